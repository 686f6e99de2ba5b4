-- Serving tenants (issue 15): where each instance's app answers, the
-- published port of a shared instance, high availability, custom domains,
-- and the trigger that asks for a `routing.sync` whenever the route table
-- may have changed, in the transaction that changed it.

-- The shared instance's published host port (a dedicated instance's is on
-- its deployment), and the upstream the reverse proxy dials: the Docker
-- engine's host and the published port, or the LXC container's IPv4 read
-- from Proxmox and the product's internal port. Null until read.
ALTER TABLE instances
    ADD COLUMN host_port integer CHECK (host_port BETWEEN 1 AND 65535),
    ADD COLUMN upstream_host text,
    ADD COLUMN upstream_port integer CHECK (upstream_port BETWEEN 1 AND 65535),
    ADD COLUMN upstream_read_at timestamptz,
    ADD COLUMN high_availability boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX instances_node_port_live ON instances (node_id, host_port)
    WHERE host_port IS NOT NULL AND status NOT IN ('destroying', 'destroyed');

-- Custom domains: `pending` until the DNS TXT record
-- `_tenantry-challenge.<hostname>` holds `verification_token`, then
-- `verified` (routed). A hostname belongs to one tenant at most.
CREATE TABLE tenant_domains (
    id                 uuid        PRIMARY KEY,
    tenant_id          uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hostname           text        NOT NULL CHECK (hostname = lower(hostname)),
    status             text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'verified')),
    verification_token text        NOT NULL,
    verified_at        timestamptz,
    last_checked_at    timestamptz,
    last_error         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenant_domains_hostname_key ON tenant_domains (hostname);
CREATE INDEX tenant_domains_tenant_idx ON tenant_domains (tenant_id, id);

-- What the last push to the reverse proxy did, for the status view and the
-- failure alert (one row).
CREATE TABLE routing_state (
    id              boolean     PRIMARY KEY DEFAULT true CHECK (id),
    pushed_at       timestamptz,
    pushed_hash     text,
    routes          integer     NOT NULL DEFAULT 0,
    failures        integer     NOT NULL DEFAULT 0,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO routing_state DEFAULT VALUES;

-- Queues a `routing.sync` unless one is already queued (a running one does
-- not count: it may have read the table before this change, so another
-- runs after it). The job is inserted in the changing transaction, so no
-- worker sees it before the change commits; duplicates from concurrent
-- transactions only push the same table twice.
CREATE FUNCTION tenantry_routing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM jobs WHERE kind = 'routing.sync' AND status = 'queued') THEN
        INSERT INTO jobs (id, kind, payload) VALUES (gen_random_uuid(), 'routing.sync', '{}'::jsonb);
        PERFORM pg_notify('tenantry_jobs', '');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tenants_routing AFTER UPDATE OF status, slug, plan_id ON tenants
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.slug IS DISTINCT FROM NEW.slug
                       OR OLD.plan_id IS DISTINCT FROM NEW.plan_id)
    EXECUTE FUNCTION tenantry_routing_changed();
CREATE TRIGGER deployments_routing AFTER INSERT OR DELETE OR UPDATE OF status, instance_id ON deployments
    FOR EACH ROW EXECUTE FUNCTION tenantry_routing_changed();
CREATE TRIGGER instances_routing AFTER UPDATE OF upstream_host, upstream_port ON instances
    FOR EACH ROW WHEN (OLD.upstream_host IS DISTINCT FROM NEW.upstream_host OR OLD.upstream_port IS DISTINCT FROM NEW.upstream_port)
    EXECUTE FUNCTION tenantry_routing_changed();
CREATE TRIGGER tenant_domains_routing AFTER INSERT OR DELETE OR UPDATE OF status, hostname ON tenant_domains
    FOR EACH ROW EXECUTE FUNCTION tenantry_routing_changed();
