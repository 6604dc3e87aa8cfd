-- Read model for the statistics: how many households with a published state,
-- and how many of them in dual employment, per community. Counting them from
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
    division_code   text   NOT NULL,
    households      bigint NOT NULL,
    dual_employment bigint NOT NULL
);
CREATE INDEX api_household_count_division ON api_household_count (division_code);

CREATE FUNCTION api_household_is_counted(h household) RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN h.version > 0 THEN 1 ELSE 0 END $$;
CREATE FUNCTION api_household_is_dual(h household) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN h.version > 0 AND h.content->'dual_employment' = 'true'::jsonb THEN 1 ELSE 0 END
$$;

CREATE FUNCTION api_household_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_household_count (division_code, households, dual_employment)
    SELECT n.division_code, sum(api_household_is_counted(n)), sum(api_household_is_dual(n))
    FROM new_rows n WHERE n.version > 0
    GROUP BY n.division_code;
    RETURN NULL;
END
$$;

CREATE FUNCTION api_household_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_household_count (division_code, households, dual_employment)
    SELECT division_code, sum(households), sum(dual)
    FROM (SELECT n.division_code, api_household_is_counted(n) AS households, api_household_is_dual(n) AS dual
          FROM new_rows n WHERE n.version > 0
          UNION ALL
          SELECT o.division_code, -api_household_is_counted(o), -api_household_is_dual(o)
          FROM old_rows o WHERE o.version > 0) AS d
    GROUP BY division_code
    HAVING sum(households) <> 0 OR sum(dual) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION api_household_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_household_count (division_code, households, dual_employment)
    SELECT o.division_code, -sum(api_household_is_counted(o)), -sum(api_household_is_dual(o))
    FROM old_rows o WHERE o.version > 0
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
        RETURNING c.division_code, c.households, c.dual_employment
    ), folded AS (
        INSERT INTO api_household_count (division_code, households, dual_employment)
        SELECT division_code, sum(households), sum(dual_employment) FROM gone
        GROUP BY division_code
        HAVING sum(households) <> 0 OR sum(dual_employment) <> 0
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

-- Backfill from the households there are.
INSERT INTO api_household_count (division_code, households, dual_employment)
SELECT division_code, count(*), sum(api_household_is_dual(h))
FROM household h WHERE version > 0
GROUP BY division_code;

-- The statistics no longer read these, and the hub need not keep them.
DROP INDEX api_household_published;
DROP INDEX api_household_dual;

-- A household's alerts (its detail page) by household, not by a scan of
-- every alert; alerts by division are `api_alert_division_time`'s, whose
-- leading column makes `alert_division` redundant.
CREATE INDEX api_alert_household ON alert (household_id, raised_at DESC);
DROP INDEX IF EXISTS alert_division;
