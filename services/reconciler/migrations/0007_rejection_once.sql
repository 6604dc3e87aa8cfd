-- A rejection is recorded once per message, not once per delivery.
--
-- The consumer confirms a rejected message on `dynzero.rejected`, records
-- it here, then acks. A hub that dies between the record and the ack gets
-- the message again, redelivered; it publishes it again (outputs are at
-- least once) but must not record it twice. A redelivered message is
-- recorded only when no rejection of the same reason, routing key, AMQP
-- `message_id` and body is recorded yet. A message the broker delivers for
-- the first time is always recorded, so two publishes of the same bytes
-- stay two rejections.
ALTER TABLE rejection
    ADD COLUMN message_id  text,
    ADD COLUMN body_digest bytea GENERATED ALWAYS AS (sha256(coalesce(body, ''::bytea))) STORED;

CREATE INDEX rejection_body_digest ON rejection (body_digest);
