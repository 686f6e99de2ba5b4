DROP TABLE sandbox_clock;
DROP TABLE charges;
ALTER TABLE subscriptions RESET (fillfactor);
ALTER TABLE tenants RESET (fillfactor);
DROP TABLE plan_changes;
DROP INDEX subscriptions_renewal_due;
ALTER TABLE subscriptions DROP COLUMN past_due_since, DROP COLUMN saved_payment_method, DROP COLUMN billing_anchor;
DROP FUNCTION uuid_v7();
