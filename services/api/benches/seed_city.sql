-- A city of :households households for measuring the read side (BENCHMARKS.md):
-- 4 districts × 10 streets × 10 communities, about 5 in 1,000 households
-- zero-employment today, 5 in 1,000 more whose spell closed, versions
-- published over the last two years. Run on a database the API has
-- migrated:  psql -v households=1200000 -f seed_city.sql
\set ON_ERROR_STOP on
CREATE TEMP TABLE seed AS
SELECT n,
       'B' || lpad(n::text, 8, '0') AS household_id,
       (ARRAY['210302','210303','210304','210311'])[1 + n % 4]
         || lpad((1 + (n / 4) % 10)::text, 3, '0')
         || lpad((1 + (n / 40) % 10)::text, 3, '0') AS division_code,
       now() - make_interval(days => ((n::bigint * 7919) % 720)::int) AS first_at,
       -- Spread over every community (n % 200 would put them all in two).
       CASE (hashint4(n) & 2147483647) % 200 WHEN 0 THEN 'open' WHEN 100 THEN 'closed' ELSE 'never' END AS kind
FROM generate_series(1, :households) AS n;

INSERT INTO household_version (household_id, version, status, zero_since, division_code, published_at, cause_arrivals, content)
SELECT household_id, v.version, v.status, v.zero_since, division_code, v.at, '{}',
       jsonb_build_object('household_id', household_id, 'division_code', division_code,
           'version', v.version, 'status', v.status, 'zero_since', v.zero_since,
           'dual_employment', n % 3 = 0 AND v.status = 'employed',
           'dibao', CASE WHEN n % 5 = 0 THEN jsonb_build_object('case_id', 'C' || n, 'monthly_amount', 560) END,
           'members', jsonb_build_array(
               jsonb_build_object('id_number', '210302198003011234', 'name', '王小明', 'birth_date', '1980-03-01',
                   'sex', 'male', 'in_labour_force', true, 'employed', v.status = 'employed',
                   'employment_kind', CASE WHEN v.status = 'employed' THEN 'formal' END,
                   'employer_uscc', NULL, 'stable', v.status = 'employed' AND n % 4 <> 0)),
           'caused_by', '[]'::jsonb)
FROM seed, LATERAL (
    SELECT 1 AS version, 'employed' AS status, NULL::date AS zero_since, first_at AS at
    UNION ALL
    SELECT 2, 'zero_employment', (first_at + interval '10 days')::date, first_at + interval '11 days'
    WHERE kind <> 'never'
    UNION ALL
    SELECT 3, 'employed', NULL, first_at + interval '60 days' WHERE kind = 'closed'
) AS v;

INSERT INTO household (household_id, version, content, status, zero_since, division_code, last_visit)
SELECT DISTINCT ON (household_id) household_id, version, content - 'version' - 'caused_by', status,
       zero_since, division_code, CASE WHEN version = 2 THEN zero_since + 20 END
FROM household_version ORDER BY household_id, version DESC;
-- As a database that has been running looks: vacuumed (index-only scans see
-- all-visible pages) and analysed.
VACUUM ANALYZE household;
VACUUM ANALYZE household_version;
