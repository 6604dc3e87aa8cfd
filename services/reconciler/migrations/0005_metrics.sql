-- When each outbox row was written, for the age of the oldest
-- (`dynzero_outbox_oldest_age_seconds`). Existing rows get the migration's
-- time; a constant default adds the column without rewriting the table.
ALTER TABLE outbox ADD COLUMN written_at timestamptz NOT NULL DEFAULT now();
