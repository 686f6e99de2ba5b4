ALTER TABLE products DROP COLUMN shared_tenant_connection_limit;
