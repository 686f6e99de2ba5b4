-- The node registry: Proxmox VE nodes and Docker hosts Tenantry places
-- instances on, and the instances (containers) it runs there.

CREATE TABLE nodes (
    id                 uuid        PRIMARY KEY,
    kind               text        NOT NULL CHECK (kind IN ('proxmox', 'docker')),
    -- our name for it; for Proxmox also the PVE node name unless pve_node says otherwise
    name               text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    -- https://host:8006/api2/json (Proxmox), unix:///var/run/docker.sock or https://host:2376 (Docker)
    api_url            text        NOT NULL CHECK (length(api_url) BETWEEN 1 AND 2048),
    pve_node           text,
    -- the credentials (Proxmox API token id and secret, Docker TLS client key…),
    -- a JSON document sealed with AES-256-GCM under the key named by credentials_key_id
    credentials        bytea,
    credentials_key_id text,
    -- TLS verification: default roots, or a custom CA (PEM), or a pinned SHA-256 certificate fingerprint
    tls_ca_pem         text,
    tls_fingerprint    text        CHECK (tls_fingerprint ~ '^([0-9A-F]{2}:){31}[0-9A-F]{2}$'),
    status             text        NOT NULL DEFAULT 'online' CHECK (status IN ('online', 'offline', 'maintenance', 'draining')),
    -- capacity offered to Tenantry
    cpu_cores          integer     NOT NULL CHECK (cpu_cores > 0),
    memory_mib         bigint      NOT NULL CHECK (memory_mib > 0),
    storage_gib        bigint      NOT NULL CHECK (storage_gib > 0),
    max_instances      integer     NOT NULL CHECK (max_instances > 0),
    -- last health check
    version            text,
    last_checked_at    timestamptz,
    last_error         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((credentials IS NULL) = (credentials_key_id IS NULL)),
    CHECK (tls_ca_pem IS NULL OR tls_fingerprint IS NULL)
);

-- A container on a node: shared (hosts many tenants) or dedicated (one tenant).
CREATE TABLE instances (
    id          uuid        PRIMARY KEY,
    node_id     uuid        NOT NULL REFERENCES nodes (id) ON DELETE RESTRICT,
    product_id  uuid        NOT NULL REFERENCES products (id),
    kind        text        NOT NULL CHECK (kind IN ('shared', 'dedicated')),
    -- the driver's id: Proxmox vmid, Docker container id; null until created
    external_id text,
    -- destroyed: the container is gone but its data (Docker volumes) is kept
    -- until the tenant is deleted
    status      text        NOT NULL DEFAULT 'creating' CHECK (status IN ('creating', 'running', 'stopped', 'destroying', 'destroyed', 'failed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (node_id, external_id)
);
CREATE INDEX instances_node_idx ON instances (node_id);
