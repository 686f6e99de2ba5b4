DROP INDEX stripe_checkouts_key;
DELETE FROM stripe_checkouts a USING stripe_checkouts b WHERE a.key = b.key AND a.created_at < b.created_at;
ALTER TABLE stripe_checkouts DROP CONSTRAINT stripe_checkouts_pkey;
ALTER TABLE stripe_checkouts DROP COLUMN purpose, DROP COLUMN plan_change_id, DROP COLUMN amount_minor,
    DROP COLUMN currency, DROP COLUMN expires_at, DROP COLUMN status;
ALTER TABLE stripe_checkouts ADD PRIMARY KEY (key);
DROP TABLE credits;
DROP INDEX charges_status;
ALTER TABLE charges DROP COLUMN credit_applied;
DELETE FROM charges WHERE kind = 'refund';
UPDATE charges SET status = 'failed' WHERE status = 'canceled';
ALTER TABLE charges DROP CONSTRAINT charges_status_check,
    ADD CONSTRAINT charges_status_check CHECK (status IN ('pending', 'processing', 'paid', 'failed'));
ALTER TABLE charges DROP CONSTRAINT charges_kind_check,
    ADD CONSTRAINT charges_kind_check CHECK (kind IN ('renewal', 'upgrade'));
ALTER TABLE plan_changes DROP COLUMN previous_period_start, DROP COLUMN previous_period_end, DROP COLUMN previous_anchor;
ALTER TABLE subscriptions DROP COLUMN price_version, DROP COLUMN price_synced_version;
