-- Secrets sealed at rest, and alerts that cannot be recorded parked.

-- A subscription's whole target (webhook secret, the token in a robot's URL,
-- DingTalk's signing secret) sealed with AES-256-GCM under the key of
-- `[security]`; `target` keeps only a public view (kind, URL without its
-- query). `target_hash` is the keyed hash delivery rows group by. Rows stored
-- before this migration are sealed by the next `dynzero run`, which has the key.
ALTER TABLE notifier_subscription
    ADD COLUMN target_sealed bytea,
    ADD COLUMN target_hash   text;

-- Delivery rows no longer carry a target's URL: until the next `dynzero run`
-- replaces it with the keyed hash, an unkeyed digest (of a token-bearing URL,
-- not guessable) stands in for it.
UPDATE notifier_delivery
SET target_key = 'legacy:' || encode(sha256(convert_to(target_key, 'UTF8')), 'hex');

-- Alerts whose recording kept failing on their data (on a healthy
-- connection): kept with the reason, acknowledged, never blocking the rest.
CREATE TABLE notifier_parked (
    id          bigserial PRIMARY KEY,
    alert_id    text NOT NULL,
    routing_key text NOT NULL,
    body        bytea NOT NULL,
    reason      text NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now()
);
