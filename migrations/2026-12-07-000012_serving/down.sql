DROP TRIGGER tenant_domains_routing ON tenant_domains;
DROP TRIGGER instances_routing ON instances;
DROP TRIGGER deployments_routing ON deployments;
DROP TRIGGER tenants_routing ON tenants;
DROP FUNCTION tenantry_routing_changed();
DELETE FROM jobs WHERE kind = 'routing.sync';
DROP TABLE routing_state;
DROP TABLE tenant_domains;
DROP INDEX instances_node_port_live;
ALTER TABLE instances
    DROP COLUMN high_availability,
    DROP COLUMN upstream_read_at,
    DROP COLUMN upstream_port,
    DROP COLUMN upstream_host,
    DROP COLUMN host_port;
