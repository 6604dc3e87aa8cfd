-- Retention (`[retention]`, run by `dynzero run`): the purges find their
-- oldest rows by index, a small batch at a time.
CREATE INDEX inbox_received_at ON inbox (received_at);
CREATE INDEX rejection_rejected_at ON rejection (rejected_at);
-- An inbox row is kept while a cause it carries waits to be named by a
-- version (the version's lineage joins inbox by arrival).
CREATE INDEX household_cause_unpublished ON household_cause (arrival) WHERE NOT published;
