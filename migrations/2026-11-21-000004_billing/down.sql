DROP TABLE sandbox_clock;
DROP TABLE charges;
DROP TABLE plan_changes;
ALTER TABLE subscriptions DROP COLUMN past_due_since, DROP COLUMN saved_payment_method, DROP COLUMN billing_anchor;
DROP FUNCTION uuid_v7();
