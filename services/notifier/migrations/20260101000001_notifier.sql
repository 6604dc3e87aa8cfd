-- The notifier's tables. Its migrations are tracked in their own table
-- (`_notifier_migrations`), so they never meet the reconciler's.

-- Who wants which alerts, and where. `kinds` empty means every kind.
-- `origin` is `config` for subscriptions synchronised from the configuration
-- file at start-up, `runtime` for those managed with `dynzero subscriptions`.
CREATE TABLE notifier_subscription (
    name            text PRIMARY KEY,
    division_prefix text NOT NULL CHECK (division_prefix ~ '^([0-9]{4}|[0-9]{6}|[0-9]{9}|[0-9]{12})$'),
    kinds           text[] NOT NULL DEFAULT '{}',
    target          jsonb NOT NULL,
    target_kind     text NOT NULL CHECK (target_kind IN ('webhook', 'wecom', 'dingtalk', 'amqp')),
    pii             text NOT NULL DEFAULT 'masked' CHECK (pii IN ('masked', 'full')),
    origin          text NOT NULL DEFAULT 'runtime' CHECK (origin IN ('config', 'runtime')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Every alert consumed, as the bytes of its CloudEvent.
CREATE TABLE notifier_alert (
    alert_id      text PRIMARY KEY,
    kind          text NOT NULL,
    division_code text NOT NULL,
    body          bytea NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per (alert, subscription): the schedule lives here, so a restart
-- resumes where the last process was. A delivery that gives up stays, as
-- `failed`, with its last error.
CREATE TABLE notifier_delivery (
    id              bigserial PRIMARY KEY,
    alert_id        text NOT NULL REFERENCES notifier_alert (alert_id),
    subscription    text NOT NULL,
    target_key      text NOT NULL,
    target_kind     text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_status     integer,
    last_error      text,
    UNIQUE (alert_id, subscription)
);

CREATE INDEX notifier_delivery_due ON notifier_delivery (next_attempt_at) WHERE status = 'pending';
