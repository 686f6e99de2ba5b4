-- Deployments: where a tenant runs (instance, host port, its own database),
-- and what provisioning tells billing (a failed migration to credit).

-- What an instance reserves on its node (placement sums these), and its host name.
ALTER TABLE instances
    ADD COLUMN cpu_cores   integer NOT NULL DEFAULT 0 CHECK (cpu_cores >= 0),
    ADD COLUMN memory_mib  integer NOT NULL DEFAULT 0 CHECK (memory_mib >= 0),
    ADD COLUMN storage_gib integer NOT NULL DEFAULT 0 CHECK (storage_gib >= 0),
    ADD COLUMN hostname    text;

-- A shared instance serves one product on one node; at most one live per pair.
CREATE UNIQUE INDEX instances_one_shared_per_product_node
    ON instances (product_id, node_id) WHERE kind = 'shared' AND status <> 'destroying';

CREATE TABLE deployments (
    id                  uuid        PRIMARY KEY,
    tenant_id           uuid        NOT NULL REFERENCES tenants (id),
    -- kept while live; a retired deployment outlives its instance and node
    instance_id         uuid        REFERENCES instances (id) ON DELETE SET NULL,
    node_id             uuid        REFERENCES nodes (id) ON DELETE SET NULL,
    kind                text        NOT NULL CHECK (kind IN ('shared', 'dedicated')),
    -- the host port of a dedicated instance, from the product's range
    host_port           integer     CHECK (host_port BETWEEN 1 AND 65535),
    -- the tenant's own database on the product's database server, and its role;
    -- the role's password sealed with AES-256-GCM under database_password_key_id
    database_name       text        NOT NULL,
    database_role       text        NOT NULL,
    database_password   bytea       NOT NULL,
    database_password_key_id text   NOT NULL,
    url                 text        NOT NULL,
    -- provisioning: being built; active: serves the tenant (its route);
    -- retired: replaced or removed (its port and instance are free again)
    status              text        NOT NULL DEFAULT 'provisioning' CHECK (status IN ('provisioning', 'active', 'retired')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'dedicated') = (host_port IS NOT NULL)),
    CHECK (status = 'retired' OR (instance_id IS NOT NULL AND node_id IS NOT NULL))
);
-- A host port is held by one live deployment per node.
CREATE UNIQUE INDEX deployments_node_port_live
    ON deployments (node_id, host_port) WHERE host_port IS NOT NULL AND status <> 'retired';
-- One route per tenant; one deployment being built per tenant.
CREATE UNIQUE INDEX deployments_one_active ON deployments (tenant_id) WHERE status = 'active';
CREATE UNIQUE INDEX deployments_one_building ON deployments (tenant_id) WHERE status = 'provisioning';
CREATE INDEX deployments_instance_idx ON deployments (instance_id) WHERE status <> 'retired';

-- Events provisioning records for billing (DESIGN.md: the two sides meet
-- through rows in store): a failed migration the customer is to be credited for.
CREATE TABLE provisioning_events (
    id             uuid        PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('migration_failed')),
    tenant_id      uuid        NOT NULL REFERENCES tenants (id),
    plan_change_id uuid        REFERENCES plan_changes (id),
    detail         jsonb       NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- set by billing once it acted on it
    consumed_at    timestamptz,
    UNIQUE (kind, plan_change_id)
);
