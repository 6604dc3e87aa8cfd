-- When the source produced each inbound event: the lineage of a version names it.
ALTER TABLE inbox ADD COLUMN time timestamptz;

-- Every published version of every household, as published: the lineage the
-- read side shows and the history its statistics are computed from. A
-- zero-employment spell is a maximal run of versions whose status is
-- zero_employment.
CREATE TABLE household_version (
    household_id   text        NOT NULL,
    version        bigint      NOT NULL,
    status         text        NOT NULL,
    zero_since     date,
    division_code  text        NOT NULL,
    published_at   timestamptz NOT NULL,
    cause_arrivals bigint[]    NOT NULL,   -- inbox.arrival of each event in caused_by
    content        jsonb       NOT NULL,   -- the state `data` as published
    PRIMARY KEY (household_id, version)
);
CREATE INDEX household_version_division ON household_version (division_code, published_at);

-- The version that began the household's current zero-employment spell
-- (null when it is not zero-employment): placement_overdue and visit_overdue
-- are raised once per spell, however late facts move zero_since.
ALTER TABLE household ADD COLUMN spell_version bigint;
UPDATE household SET spell_version = version WHERE status = 'zero_employment';

-- A rejected message whole, so it can be shown (masked) and replayed byte for byte.
ALTER TABLE rejection
    ADD COLUMN body         bytea,
    ADD COLUMN content_type text,
    ADD COLUMN source       text,
    ADD COLUMN event_type   text,
    ADD COLUMN replayed_at  timestamptz;
