-- The webhook table now belongs to arbor::webhooks::queue (which creates it when missing): what a
-- processed event led to is its `reference`, here the user the event concerns.
ALTER TABLE webhook_events RENAME COLUMN user_id TO reference;
