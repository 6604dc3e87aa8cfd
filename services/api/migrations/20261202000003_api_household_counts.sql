-- The statistics count households and dual-employment households per
-- division from these partial indexes alone (index-only scans), instead of
-- visiting every household row of the scope (BENCHMARKS.md, "read side").
CREATE INDEX api_household_published ON household (division_code) WHERE version > 0;
CREATE INDEX api_household_dual ON household (division_code)
    WHERE version > 0 AND content->'dual_employment' = 'true'::jsonb;
