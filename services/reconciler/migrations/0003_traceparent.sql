-- The CloudEvents distributed-tracing extension (docs/contract.md, "Tracing").
-- An inbound event's trace context, when it carried a valid one, and the
-- `traceparent` the outputs it causes carry: the same trace, the hub's span.
ALTER TABLE inbox
    ADD COLUMN traceparent        text,
    ADD COLUMN tracestate         text,
    ADD COLUMN onward_traceparent text;

-- The output's `traceparent` attribute, also published as the AMQP header
-- `traceparent` (the body already holds it; the relay does not parse bodies).
ALTER TABLE outbox ADD COLUMN traceparent text;
