-- The read side's own tables, tracked in `_api_migrations`. They sit in the
-- hub's database, after the reconciler's migrations (the trigger reads `alert`).

-- Bearer tokens. Only a SHA-256 of each token is kept: tokens are 256 random
-- bits, so a fast hash is enough and a leaked table grants nothing.
CREATE TABLE api_token (
    name        text        PRIMARY KEY,
    token_hash  text        NOT NULL UNIQUE,
    division    text        NOT NULL CHECK (division ~ '^([0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$'),
    role        text        NOT NULL CHECK (role IN ('worker', 'supervisor', 'admin')),
    pii         text        NOT NULL CHECK (pii IN ('masked', 'full')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Every full-PII read of a household: who, when, which.
CREATE TABLE api_audit (
    seq          bigserial   PRIMARY KEY,
    token_name   text        NOT NULL,
    read_at      timestamptz NOT NULL DEFAULT now(),
    household_id text        NOT NULL
);
CREATE INDEX api_audit_read_at ON api_audit (read_at);

-- The live alert stream: each committed alert is announced on channel
-- `dynzero_alert` with its id; the API's one listener fetches and fans it out.
CREATE FUNCTION api_alert_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dynzero_alert', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER api_alert_notify AFTER INSERT ON alert
    FOR EACH ROW EXECUTE FUNCTION api_alert_notify();

-- The ledger pages by (division_code, household_id) within a scope prefix,
-- and alerts newest first within one.
CREATE INDEX api_household_division ON household (division_code, household_id);
CREATE INDEX api_alert_division_time ON alert (division_code, raised_at DESC, id);
