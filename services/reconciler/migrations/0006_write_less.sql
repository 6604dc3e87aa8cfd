-- Write less per message (BENCHMARKS.md, "Write less"): an index no
-- statement reads, and foreign keys whose every row the bulk writer inserts
-- in the same statement batch as its parent, under the batch's locks — each
-- cost a write or a lookup per row. The read side's statistics read
-- `api_spell_event`, not `household_version` by division.
DROP INDEX IF EXISTS household_version_division;
ALTER TABLE registration_member DROP CONSTRAINT IF EXISTS registration_member_arrival_fkey;
ALTER TABLE layoff_employee DROP CONSTRAINT IF EXISTS layoff_employee_arrival_fkey;
