-- The product catalog: the apps we host and the plans they are sold on.
-- Enumerations are text with CHECK constraints (not PostgreSQL enums) so a new
-- value is a one-line migration that can be reverted.

CREATE TABLE products (
    id                   uuid        PRIMARY KEY,
    slug                 text        NOT NULL UNIQUE
                                     CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'),
    name                 text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description          text,
    driver               text        NOT NULL CHECK (driver IN ('proxmox', 'docker')),
    -- Proxmox `ostemplate` volume id, e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
    lxc_template         text,
    -- Docker image reference, or the name of a compose stack under docker/stacks/
    image                text,
    compose_stack        text,
    internal_port        integer     NOT NULL CHECK (internal_port BETWEEN 1 AND 65535),
    -- shared instance settings: all set or all NULL
    shared_max_tenants   integer     CHECK (shared_max_tenants > 0),
    shared_cpu_cores     integer     CHECK (shared_cpu_cores > 0),
    shared_memory_mib    integer     CHECK (shared_memory_mib > 0),
    shared_storage_gib   integer     CHECK (shared_storage_gib > 0),
    -- host ports for dedicated tenants, inclusive
    dedicated_port_start integer,
    dedicated_port_end   integer,
    active               boolean     NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT products_artifact_matches_driver CHECK (
        (driver = 'proxmox' AND lxc_template IS NOT NULL AND image IS NULL AND compose_stack IS NULL)
        OR (driver = 'docker' AND lxc_template IS NULL AND (image IS NULL) <> (compose_stack IS NULL))
    ),
    CONSTRAINT products_shared_all_or_none CHECK (
        num_nulls(shared_max_tenants, shared_cpu_cores, shared_memory_mib, shared_storage_gib) IN (0, 4)
    ),
    CONSTRAINT products_dedicated_port_range CHECK (
        (dedicated_port_start IS NULL AND dedicated_port_end IS NULL)
        OR (dedicated_port_start BETWEEN 1024 AND 65535
            AND dedicated_port_end BETWEEN 1024 AND 65535
            AND dedicated_port_start <= dedicated_port_end)
    )
);

CREATE TABLE plans (
    id               uuid          PRIMARY KEY,
    product_id       uuid          NOT NULL REFERENCES products (id) ON DELETE RESTRICT,
    code             text          NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name             text          NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    tier_rank        integer       NOT NULL CHECK (tier_rank >= 0),
    -- price per billing interval in the currency's major unit (29.00 = 29 USD)
    price            numeric(19,4) NOT NULL CHECK (price >= 0),
    -- ISO 4217 alphabetic code
    currency         text          NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    billing_interval text          NOT NULL CHECK (billing_interval IN ('month', 'year', 'lifetime')),
    deployment       text          NOT NULL CHECK (deployment IN ('shared', 'dedicated', 'dedicated_ha')),
    cpu_cores        integer       NOT NULL CHECK (cpu_cores > 0),
    memory_mib       integer       NOT NULL CHECK (memory_mib > 0),
    storage_gib      integer       NOT NULL CHECK (storage_gib > 0),
    -- none, hourly, daily, weekly or <hours>h
    backup_schedule  text          NOT NULL,
    sla_percent      numeric(6,3)  CHECK (sla_percent > 0 AND sla_percent <= 100),
    active           boolean       NOT NULL DEFAULT true,
    created_at       timestamptz   NOT NULL DEFAULT now(),
    updated_at       timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT plans_code_unique_per_product UNIQUE (product_id, code)
);

CREATE INDEX plans_product_id_idx ON plans (product_id, id);
