-- The API keeps the callers of valid tokens in memory; a token revoked,
-- changed or deleted is announced on channel `dynzero_token`, and every API
-- process drops what it kept (services/api/src/access.rs, `TokenCache`).
CREATE FUNCTION api_token_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dynzero_token', OLD.name);
    RETURN NULL;
END
$$;
CREATE TRIGGER api_token_notify AFTER UPDATE OR DELETE ON api_token
    FOR EACH ROW EXECUTE FUNCTION api_token_notify();
