DROP INDEX provisioning_events_unconsumed;
DELETE FROM provisioning_events WHERE kind = 'provisioning_failed';
ALTER TABLE provisioning_events DROP CONSTRAINT provisioning_events_kind_check;
ALTER TABLE provisioning_events ADD CONSTRAINT provisioning_events_kind_check
    CHECK (kind IN ('migration_failed'));
