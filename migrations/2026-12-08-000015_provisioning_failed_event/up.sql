-- A tenant's provisioning that gave up is a fact billing acts on: a paid
-- subscription served late is credited for the time without service.
ALTER TABLE provisioning_events DROP CONSTRAINT provisioning_events_kind_check;
ALTER TABLE provisioning_events ADD CONSTRAINT provisioning_events_kind_check
    CHECK (kind IN ('migration_failed', 'provisioning_failed'));
CREATE INDEX provisioning_events_unconsumed ON provisioning_events (tenant_id, kind) WHERE consumed_at IS NULL;
