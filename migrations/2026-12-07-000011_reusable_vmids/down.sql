DROP INDEX instances_node_id_external_id_key;
ALTER TABLE instances ADD CONSTRAINT instances_node_id_external_id_key UNIQUE (node_id, external_id);
