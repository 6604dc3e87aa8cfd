-- Read model for the statistics: per community, how many households have a
-- published state, and of them how many are in dual employment, how many
-- zero-employment, and how many zero-employment with 低保. Counting them from
-- the household table's indexes cost 0.6 s for a city of 1.2 M households
-- (BENCHMARKS.md, "read side"); these counters cost a few thousand rows.
--
-- The hub's transactions never update a shared counter row (two consumers
-- would queue on a busy community's row, or deadlock): a statement-level
-- trigger on `household` appends one delta row per community whose counts a
-- statement changed, in the same transaction as the change. The API folds
-- each community's deltas into one row every few seconds
-- (`api_household_count_compact`), so a read sums about one row per
-- community. The counts are exact at every commit: a delta commits or rolls
-- back with the change that made it.
CREATE TABLE api_household_count (
    division_code    text   NOT NULL,
    households       bigint NOT NULL,   -- with a published state
    dual_employment  bigint NOT NULL,   -- of those, dual_employment
    zero_employment  bigint NOT NULL,   -- of those, status zero_employment
    dibao_among_zero bigint NOT NULL    -- of those, with an active 低保 case
);
CREATE INDEX api_household_count_division ON api_household_count (division_code);

-- What one household row contributes to its community's counts.
CREATE FUNCTION api_household_counts(h household,
    OUT households int, OUT dual_employment int, OUT zero_employment int, OUT dibao_among_zero int)
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN h.version > 0 THEN 1 ELSE 0 END,
           CASE WHEN h.version > 0 AND h.content->'dual_employment' = 'true'::jsonb THEN 1 ELSE 0 END,
           CASE WHEN h.version > 0 AND h.status = 'zero_employment' THEN 1 ELSE 0 END,
           CASE WHEN h.version > 0 AND h.status = 'zero_employment'
                     AND jsonb_typeof(h.content->'dibao') = 'object' THEN 1 ELSE 0 END
$$;

-- Appends, per community, the counts of `added` less those of `removed`
-- (either may be empty), where they differ from zero.
CREATE FUNCTION api_household_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_household_count
    SELECT n.division_code, sum(c.households), sum(c.dual_employment),
           sum(c.zero_employment), sum(c.dibao_among_zero)
    FROM new_rows n, api_household_counts(n) c WHERE n.version > 0
    GROUP BY n.division_code;
    RETURN NULL;
END
$$;

CREATE FUNCTION api_household_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_household_count
    SELECT division_code, sum(households), sum(dual_employment), sum(zero_employment),
           sum(dibao_among_zero)
    FROM (SELECT n.division_code, c.households, c.dual_employment, c.zero_employment,
                 c.dibao_among_zero
          FROM new_rows n, api_household_counts(n) c WHERE n.version > 0
          UNION ALL
          SELECT o.division_code, -c.households, -c.dual_employment, -c.zero_employment,
                 -c.dibao_among_zero
          FROM old_rows o, api_household_counts(o) c WHERE o.version > 0) AS d
    GROUP BY division_code
    HAVING sum(households) <> 0 OR sum(dual_employment) <> 0 OR sum(zero_employment) <> 0
        OR sum(dibao_among_zero) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION api_household_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_household_count
    SELECT o.division_code, -sum(c.households), -sum(c.dual_employment),
           -sum(c.zero_employment), -sum(c.dibao_among_zero)
    FROM old_rows o, api_household_counts(o) c WHERE o.version > 0
    GROUP BY o.division_code;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_household_count_insert AFTER INSERT ON household
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION api_household_count_insert();
CREATE TRIGGER api_household_count_update AFTER UPDATE ON household
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION api_household_count_update();
CREATE TRIGGER api_household_count_delete AFTER DELETE ON household
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION api_household_count_delete();

-- Fold each community's deltas into one row. Safe to run concurrently (a
-- second fold skips the rows the first deleted) and beside the hub (a delta
-- not yet committed is folded next time). It runs as its owner, so the
-- API's read-mostly role needs no write privilege on the table.
CREATE FUNCTION api_household_count_compact() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH many AS (
        SELECT division_code FROM api_household_count GROUP BY division_code HAVING count(*) > 1
    ), gone AS (
        DELETE FROM api_household_count c USING many
        WHERE c.division_code = many.division_code
        RETURNING c.*
    ), folded AS (
        INSERT INTO api_household_count
        SELECT division_code, sum(households), sum(dual_employment), sum(zero_employment),
               sum(dibao_among_zero)
        FROM gone
        GROUP BY division_code
        HAVING sum(households) <> 0 OR sum(dual_employment) <> 0 OR sum(zero_employment) <> 0
            OR sum(dibao_among_zero) <> 0
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

-- Backfill from the households there are.
INSERT INTO api_household_count
SELECT h.division_code, sum(c.households), sum(c.dual_employment), sum(c.zero_employment),
       sum(c.dibao_among_zero)
FROM household h, api_household_counts(h) c WHERE h.version > 0
GROUP BY h.division_code;

-- The statistics no longer read these, and the hub need not keep them.
DROP INDEX api_household_published;
DROP INDEX api_household_dual;

-- A household's alerts (its detail page) by household, not by a scan of
-- every alert; alerts by division are `api_alert_division_time`'s, whose
-- leading column makes `alert_division` redundant.
CREATE INDEX api_alert_household ON alert (household_id, raised_at DESC);
DROP INDEX IF EXISTS alert_division;

-- The ledger pages zero-employment households in household id order: for a
-- community along (division_code, household_id), which replaces the hub's
-- (division_code) index on them (the hub's job matching reads a county's
-- range of it); for a street, district or city along household_id, stopping
-- after a page instead of sorting the scope's thousands.
-- Its INCLUDE columns let the statistics count the overdue ones from the
-- index alone.
CREATE INDEX api_household_zero ON household (division_code, household_id)
    INCLUDE (zero_since, last_visit) WHERE status = 'zero_employment';
CREATE INDEX api_household_zero_order ON household (household_id) INCLUDE (division_code)
    WHERE status = 'zero_employment' AND version > 0;
DROP INDEX IF EXISTS household_zero;
