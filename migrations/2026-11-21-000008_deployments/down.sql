DROP TABLE provisioning_events;
DROP TABLE deployments;
DROP INDEX instances_one_shared_per_product_node;
ALTER TABLE instances DROP COLUMN hostname, DROP COLUMN storage_gib, DROP COLUMN memory_mib, DROP COLUMN cpu_cores;
