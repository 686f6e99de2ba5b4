DROP TABLE idempotency_keys;
DROP TABLE jobs;
DROP TABLE invitations;
DROP TABLE subscriptions;
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_tenant_id_fkey;
ALTER TABLE users DROP CONSTRAINT users_tenant_id_fkey;
DROP TABLE tenants;
