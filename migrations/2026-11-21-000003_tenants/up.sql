-- Tenants, their subscription, invitations, the durable job table (its
-- workers come with the provisioning issue) and stored idempotent responses.

CREATE TABLE tenants (
    id             uuid        PRIMARY KEY,
    -- also the subdomain; reserved names are refused by the API
    slug           text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'),
    company_name   text        NOT NULL CHECK (length(company_name) BETWEEN 1 AND 200),
    product_id     uuid        NOT NULL REFERENCES products (id),
    -- the current plan
    plan_id        uuid        NOT NULL REFERENCES plans (id),
    deployment     text        NOT NULL CHECK (deployment IN ('shared', 'dedicated', 'dedicated_ha')),
    status         text        NOT NULL CHECK (status IN ('pending_payment', 'provisioning', 'active', 'paused',
                                   'suspended', 'failed', 'migrating', 'deprovisioning', 'deleted')),
    status_reason  text,
    provisioned_at timestamptz,
    -- optimistic concurrency: bumped by every change, sent as the ETag
    version        integer     NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_status_idx ON tenants (status, id);

-- Tenants are never deleted (status 'deleted'), so these never dangle.
ALTER TABLE users ADD CONSTRAINT users_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id);

-- One current subscription per tenant.
CREATE TABLE subscriptions (
    id                       uuid        PRIMARY KEY,
    tenant_id                uuid        NOT NULL UNIQUE REFERENCES tenants (id),
    plan_id                  uuid        NOT NULL REFERENCES plans (id),
    status                   text        NOT NULL CHECK (status IN ('incomplete', 'active', 'past_due', 'canceled', 'expired')),
    current_period_start     timestamptz,
    -- NULL for lifetime plans and before the first payment
    current_period_end       timestamptz,
    -- 'stripe', or 'none' while unpaid / free / paid outside a provider
    provider                 text        NOT NULL DEFAULT 'none',
    provider_customer_id     text,
    provider_subscription_id text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_period_order CHECK (current_period_end IS NULL OR current_period_end > current_period_start)
);

CREATE TABLE invitations (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    email       text        NOT NULL CHECK (email = lower(email)),
    role        text        NOT NULL CHECK (role IN ('tenant_owner', 'tenant_member')),
    -- SHA-256 of the single-use token, hex
    token_hash  text        NOT NULL UNIQUE,
    invited_by  uuid,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invitations_tenant_idx ON invitations (tenant_id, id);

-- Durable background work. Workers (claiming with SKIP LOCKED, leases,
-- back-off) arrive with the provisioning issue; rows are enqueued now.
CREATE TABLE jobs (
    id           uuid        PRIMARY KEY,
    kind         text        NOT NULL,
    tenant_id    uuid        REFERENCES tenants (id),
    status       text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
    payload      jsonb       NOT NULL DEFAULT '{}',
    -- at most one live job per key (e.g. provision:<tenant id>)
    dedup_key    text,
    attempts     integer     NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL DEFAULT 10,
    run_at       timestamptz NOT NULL DEFAULT now(),
    step         text,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE UNIQUE INDEX jobs_dedup_key_live ON jobs (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running');
CREATE INDEX jobs_tenant_idx ON jobs (tenant_id, id);

-- Idempotency-Key: the first response to (caller, key), replayed for 24 h.
CREATE TABLE idempotency_keys (
    scope            text        NOT NULL,
    key              text        NOT NULL,
    -- SHA-256 of method, path and body
    request_hash     text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('in_progress', 'completed')),
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
