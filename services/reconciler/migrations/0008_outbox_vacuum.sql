-- The outbox deletes every row it publishes: by autovacuum's default (20 %
-- of the table dead) a busy outbox would wait long for its space back.
-- Vacuum it after every 10,000 dead rows instead, whatever its size.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
