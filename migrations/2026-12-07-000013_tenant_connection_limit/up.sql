-- How many database connections one tenant of a shared instance may open
-- at once (its role's CONNECTION LIMIT): the per-tenant limit a shared
-- product declares. Null: the default of 20.
ALTER TABLE products ADD COLUMN shared_tenant_connection_limit integer
    CHECK (shared_tenant_connection_limit BETWEEN 1 AND 10000);
