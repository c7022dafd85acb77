-- Webhook delivery bookkeeping (app/webhooks.rs): when the next attempt is due, until when the
-- running attempt holds its lease, and the user the event concerns once processed.
ALTER TABLE webhook_events ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE webhook_events ADD COLUMN locked_until BIGINT;
ALTER TABLE webhook_events ADD COLUMN user_id TEXT;
CREATE INDEX webhook_events_status ON webhook_events (status);
