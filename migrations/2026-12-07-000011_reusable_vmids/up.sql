-- Proxmox hands a destroyed container's vmid out again (`/cluster/nextid`
-- answers the lowest free one), so a vmid is unique among the containers
-- that exist on a node, not among every instance ever recorded there: a
-- destroyed instance keeps its row (history, kept Docker volumes) but no
-- longer holds its external id.
ALTER TABLE instances DROP CONSTRAINT instances_node_id_external_id_key;
CREATE UNIQUE INDEX instances_node_id_external_id_key ON instances (node_id, external_id)
    WHERE status <> 'destroyed';
