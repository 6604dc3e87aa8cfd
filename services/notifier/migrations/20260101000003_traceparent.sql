-- The alert's trace context (its `traceparent` attribute, or the AMQP header
-- when the attribute is missing), sent on as the webhook request's
-- `traceparent` header so one trace runs from the inbound event to the
-- receiver (docs/operations.md, "Tracing").
ALTER TABLE notifier_delivery ADD COLUMN traceparent text;
