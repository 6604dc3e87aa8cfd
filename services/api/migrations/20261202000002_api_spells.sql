-- Read model for the statistics: one row per spell opened or closed, written
-- by a trigger as the hub inserts each version (and backfilled here), so the
-- statistics read about 1 row in 100 versions instead of scanning them all.
-- A spell opens at a zero_employment version whose predecessor is not (or
-- which has none) and closes at the next version that is not.
CREATE TABLE api_spell_event (
    household_id  text        NOT NULL,
    version       bigint      NOT NULL,
    division_code text        NOT NULL,   -- of the version that opens or closes
    published_at  timestamptz NOT NULL,
    opens         boolean     NOT NULL,   -- false: closes
    days          integer,                -- closes: published day (Asia/Shanghai) − last zero_since
    employed      integer,                -- closes: members employed in the closing version
    stable        integer,                -- closes: of those, in stable employment
    PRIMARY KEY (household_id, version)
);
CREATE INDEX api_spell_event_division ON api_spell_event (division_code, published_at);

CREATE FUNCTION api_spell_event_row(v household_version, p household_version) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF v.status = 'zero_employment' AND p.status IS DISTINCT FROM 'zero_employment' THEN
        INSERT INTO api_spell_event (household_id, version, division_code, published_at, opens)
        VALUES (v.household_id, v.version, v.division_code, v.published_at, true)
        ON CONFLICT DO NOTHING;
    ELSIF p.status = 'zero_employment' AND v.status <> 'zero_employment' THEN
        INSERT INTO api_spell_event (household_id, version, division_code, published_at, opens, days, employed, stable)
        SELECT v.household_id, v.version, v.division_code, v.published_at, false,
               ((v.published_at + interval '8 hours') AT TIME ZONE 'UTC')::date - p.zero_since,
               count(*) FILTER (WHERE m->'employed' = 'true'::jsonb),
               count(*) FILTER (WHERE m->'employed' = 'true'::jsonb AND m->'stable' = 'true'::jsonb)
        FROM jsonb_array_elements(COALESCE(v.content->'members', '[]'::jsonb)) AS m
        ON CONFLICT DO NOTHING;
    END IF;
END
$$;

CREATE FUNCTION api_spell_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p household_version;
BEGIN
    SELECT * INTO p FROM household_version
    WHERE household_id = NEW.household_id AND version = NEW.version - 1;
    PERFORM api_spell_event_row(NEW, p);
    RETURN NULL;
END
$$;
CREATE TRIGGER api_spell_event AFTER INSERT ON household_version
    FOR EACH ROW EXECUTE FUNCTION api_spell_event();

-- Backfill from the versions already published.
SELECT api_spell_event_row(v, p)
FROM household_version v
LEFT JOIN household_version p ON p.household_id = v.household_id AND p.version = v.version - 1
WHERE (v.status = 'zero_employment' AND p.status IS DISTINCT FROM 'zero_employment')
   OR (p.status = 'zero_employment' AND v.status <> 'zero_employment');
