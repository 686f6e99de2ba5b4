DROP INDEX subscriptions_provider_customer;
DROP INDEX subscriptions_provider_subscription;
DROP TABLE stripe_checkouts;
DROP TABLE stripe_catalog;
DROP TABLE stripe_events;
