-- Every processed inbound message, by its idempotency key (source, id).
-- `arrival` orders facts that share a date and a time.
CREATE TABLE inbox (
    source      text        NOT NULL,
    id          text        NOT NULL,
    digest      text        NOT NULL,   -- SHA-256 of canonical `data`
    event_type  text        NOT NULL,
    arrival     bigserial   NOT NULL UNIQUE,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);

-- household.registered: one snapshot of a household's composition.
CREATE TABLE registration (
    arrival        bigint      PRIMARY KEY,
    household_id   text        NOT NULL,
    division_code  text        NOT NULL,
    effective_date date        NOT NULL,
    time           timestamptz NOT NULL,
    address        text,
    cause          text        NOT NULL
);
CREATE INDEX registration_household ON registration (household_id);

CREATE TABLE registration_member (
    arrival       bigint  NOT NULL REFERENCES registration (arrival),
    position      int     NOT NULL,
    household_id  text    NOT NULL,
    id_number     text    NOT NULL,
    name          text    NOT NULL,
    relation      text    NOT NULL,
    able_to_work  boolean NOT NULL,
    seeking_work  boolean NOT NULL,
    status        text    NOT NULL,
    PRIMARY KEY (arrival, position)
);
CREATE INDEX registration_member_person ON registration_member (id_number);
CREATE INDEX registration_member_household ON registration_member (household_id);

-- One person's employment facts: employment.started/ended, effective layoffs, visit findings.
CREATE TABLE employment_fact (
    arrival          bigint      NOT NULL,
    position         int         NOT NULL,
    id_number        text        NOT NULL,
    date             date        NOT NULL,
    time             timestamptz NOT NULL,
    event            text        NOT NULL CHECK (event IN ('started', 'ended', 'visited')),
    employer_uscc    text,
    kind             text,
    contract_months  int,
    monthly_wage_fen bigint,
    social_insurance boolean,
    visit_household  text,
    finding          text,
    cause            text        NOT NULL,
    PRIMARY KEY (arrival, position)
);
CREATE INDEX employment_fact_person ON employment_fact (id_number);

-- household.visited (findings are employment facts).
CREATE TABLE visit (
    arrival      bigint      PRIMARY KEY,
    household_id text        NOT NULL,
    visit_date   date        NOT NULL,
    time         timestamptz NOT NULL,
    worker       text        NOT NULL,
    cause        text        NOT NULL
);
CREATE INDEX visit_household ON visit (household_id);

-- subsidy.changed (低保): a case follows its applicant.
CREATE TABLE subsidy_change (
    arrival            bigint      PRIMARY KEY,
    case_id            text        NOT NULL,
    applicant          text        NOT NULL,
    division_code      text        NOT NULL,
    change             text        NOT NULL,
    monthly_amount_fen bigint      NOT NULL,
    effective_date     date        NOT NULL,
    time               timestamptz NOT NULL,
    cause              text        NOT NULL
);
CREATE INDEX subsidy_change_applicant ON subsidy_change (applicant);

-- layoff.notice, every stage.
CREATE TABLE layoff_notice (
    arrival        bigint      PRIMARY KEY,
    uscc           text        NOT NULL,
    notice_id      text        NOT NULL,
    stage          text        NOT NULL,
    effective_date date        NOT NULL,
    time           timestamptz NOT NULL,
    name           text        NOT NULL,
    headcount      int         NOT NULL,
    division_code  text        NOT NULL,
    cause          text        NOT NULL
);
CREATE INDEX layoff_notice_key ON layoff_notice (uscc, notice_id);

CREATE TABLE layoff_employee (
    arrival   bigint NOT NULL REFERENCES layoff_notice (arrival),
    position  int    NOT NULL,
    id_number text   NOT NULL,
    name      text   NOT NULL,
    PRIMARY KEY (arrival, position)
);
CREATE INDEX layoff_employee_person ON layoff_employee (id_number);

-- job.posting, kept for audit.
CREATE TABLE job_posting (
    arrival    bigint PRIMARY KEY,
    posting_id text   NOT NULL,
    data       jsonb  NOT NULL,
    cause      text   NOT NULL
);

-- The last published state of each household.
CREATE TABLE household (
    household_id  text    PRIMARY KEY,
    version       bigint  NOT NULL DEFAULT 0,       -- 0: nothing published yet
    content       jsonb,                            -- state data without version and caused_by
    status        text,
    zero_since    date,
    division_code text,
    last_visit    date,
    next_review   date,                             -- the sweeper looks again on this day
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX household_next_review ON household (next_review);
CREATE INDEX household_zero ON household (division_code) WHERE status = 'zero_employment';

-- Inbound events applied to a household and not yet named by a version's caused_by.
CREATE TABLE household_cause (
    household_id text    NOT NULL,
    cause        text    NOT NULL,
    arrival      bigint  NOT NULL,
    published    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (household_id, cause)
);

-- Every alert raised, once per occurrence (its stable id).
CREATE TABLE alert (
    id            text        PRIMARY KEY,
    kind          text        NOT NULL,
    division_code text        NOT NULL,
    household_id  text,
    raised_at     timestamptz NOT NULL,
    summary       text        NOT NULL,
    event         jsonb       NOT NULL
);
CREATE INDEX alert_division ON alert (division_code);

-- What the relay still has to publish, in order.
CREATE TABLE outbox (
    seq         bigserial PRIMARY KEY,
    stream      text      NOT NULL CHECK (stream IN ('households', 'alerts')),
    routing_key text      NOT NULL,
    message_id  text      NOT NULL,
    body        bytea     NOT NULL
);

-- Rejected messages, for audit and the board (the message itself goes to dynzero.rejected).
CREATE TABLE rejection (
    seq         bigserial   PRIMARY KEY,
    reason      text        NOT NULL,
    detail      text        NOT NULL,
    routing_key text        NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
