-- Retention (`retention.deliveries_days`): delivered rows are purged oldest
-- first, a small batch at a time.
CREATE INDEX notifier_delivery_delivered ON notifier_delivery (delivered_at) WHERE status = 'delivered';
CREATE INDEX notifier_alert_received_at ON notifier_alert (received_at);
