-- The read models' triggers, set-based. Each hub batch inserts a few hundred
-- versions and updates as many household rows; per row, the spell trigger
-- ran a PL/pgSQL function with its own lookup (7 ms of a 14 ms insert of
-- 183 versions), and the count triggers called `api_household_counts` once
-- per old and new row (7.6 ms of a 15 ms update of 183 rows). Both now run
-- one statement over the statement's transition tables, with the same
-- results (BENCHMARKS.md, "Set-based triggers").

CREATE OR REPLACE FUNCTION api_household_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_household_count
    SELECT n.division_code, count(*),
           count(*) FILTER (WHERE n.content->'dual_employment' = 'true'::jsonb),
           count(*) FILTER (WHERE n.status = 'zero_employment'),
           count(*) FILTER (WHERE n.status = 'zero_employment'
                                  AND jsonb_typeof(n.content->'dibao') = 'object')
    FROM new_rows n WHERE n.version > 0
    GROUP BY n.division_code;
    RETURN NULL;
END
$$;

-- Each changed row counts +1 as it is now and −1 as it was; a community
-- whose counts did not change gets no row.
CREATE OR REPLACE FUNCTION api_household_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_household_count
    SELECT division_code, sum(sign),
           COALESCE(sum(sign) FILTER (WHERE dual), 0),
           COALESCE(sum(sign) FILTER (WHERE zero), 0),
           COALESCE(sum(sign) FILTER (WHERE zero AND dibao), 0)
    FROM (SELECT n.division_code, 1 AS sign,
                 n.content->'dual_employment' = 'true'::jsonb AS dual,
                 n.status = 'zero_employment' AS zero,
                 jsonb_typeof(n.content->'dibao') = 'object' AS dibao
          FROM new_rows n WHERE n.version > 0
          UNION ALL
          SELECT o.division_code, -1,
                 o.content->'dual_employment' = 'true'::jsonb,
                 o.status = 'zero_employment',
                 jsonb_typeof(o.content->'dibao') = 'object'
          FROM old_rows o WHERE o.version > 0) AS d
    GROUP BY division_code
    HAVING sum(sign) <> 0
        OR COALESCE(sum(sign) FILTER (WHERE dual), 0) <> 0
        OR COALESCE(sum(sign) FILTER (WHERE zero), 0) <> 0
        OR COALESCE(sum(sign) FILTER (WHERE zero AND dibao), 0) <> 0;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION api_household_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_household_count
    SELECT o.division_code, -count(*),
           -count(*) FILTER (WHERE o.content->'dual_employment' = 'true'::jsonb),
           -count(*) FILTER (WHERE o.status = 'zero_employment'),
           -count(*) FILTER (WHERE o.status = 'zero_employment'
                                   AND jsonb_typeof(o.content->'dibao') = 'object')
    FROM old_rows o WHERE o.version > 0
    GROUP BY o.division_code;
    RETURN NULL;
END
$$;

-- A spell opens at a zero_employment version whose predecessor is not (or
-- which has none) and closes at the next version that is not; a closing
-- row counts the members employed, and stably, in the closing version.
-- The predecessor is looked up by key for each new version (a lateral
-- lookup: never a join over the whole history, whatever the statistics).
CREATE FUNCTION api_spell_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_spell_event
        (household_id, version, division_code, published_at, opens, days, employed, stable)
    SELECT c.household_id, c.version, c.division_code, c.published_at, c.opens,
           CASE WHEN NOT c.opens
                THEN ((c.published_at + interval '8 hours') AT TIME ZONE 'UTC')::date - c.zero_since
           END,
           m.employed, m.stable
    FROM (
        SELECT v.household_id, v.version, v.division_code, v.published_at, v.content,
               v.status = 'zero_employment' AS opens, p.zero_since
        FROM new_rows v
        LEFT JOIN LATERAL (
            SELECT p.status, p.zero_since FROM household_version p
            WHERE p.household_id = v.household_id AND p.version = v.version - 1
        ) AS p ON true
        WHERE (v.status = 'zero_employment' AND p.status IS DISTINCT FROM 'zero_employment')
           OR (p.status = 'zero_employment' AND v.status <> 'zero_employment')
    ) AS c
    LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE e->'employed' = 'true'::jsonb) AS employed,
               count(*) FILTER (WHERE e->'employed' = 'true'::jsonb
                                      AND e->'stable' = 'true'::jsonb) AS stable
        FROM jsonb_array_elements(COALESCE(c.content->'members', '[]'::jsonb)) AS e
    ) AS m ON NOT c.opens
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

DROP TRIGGER api_spell_event ON household_version;
DROP FUNCTION api_spell_event();
CREATE TRIGGER api_spell_event AFTER INSERT ON household_version
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION api_spell_events();

-- The per-row helpers of the old triggers; nothing calls them now.
DROP FUNCTION api_spell_event_row(household_version, household_version);
DROP FUNCTION api_household_counts(household);
