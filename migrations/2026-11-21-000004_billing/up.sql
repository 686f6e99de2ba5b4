-- The billing engine: plan changes (history kept forever), charges
-- (renewals and upgrades), dunning state, and the sandbox clock.

-- Time-ordered UUIDs (RFC 9562 version 7) for rows written by set-based SQL,
-- so they sort with the ones the application makes.
CREATE FUNCTION uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid;
$$;

ALTER TABLE subscriptions
    -- the anchor billing periods count from (calendar months/years)
    ADD COLUMN billing_anchor timestamptz,
    -- whether the provider holds a payment method it may charge without the customer
    ADD COLUMN saved_payment_method boolean NOT NULL DEFAULT false,
    -- since when a renewal is unpaid (dunning)
    ADD COLUMN past_due_since timestamptz;
UPDATE subscriptions SET billing_anchor = current_period_start WHERE current_period_start IS NOT NULL;
-- The processor walks due renewals in (period end, id) order.
CREATE INDEX subscriptions_renewal_due ON subscriptions (current_period_end, id) WHERE status IN ('active', 'past_due');

CREATE TABLE plan_changes (
    id              uuid          PRIMARY KEY,
    tenant_id       uuid          NOT NULL REFERENCES tenants (id),
    subscription_id uuid          NOT NULL REFERENCES subscriptions (id),
    from_plan_id    uuid          NOT NULL REFERENCES plans (id),
    to_plan_id      uuid          NOT NULL REFERENCES plans (id),
    from_deployment text          NOT NULL,
    to_deployment   text          NOT NULL,
    kind            text          NOT NULL CHECK (kind IN ('upgrade', 'downgrade')),
    -- how it takes effect: on payment, at the end of the term, or at once by an operator
    timing          text          NOT NULL CHECK (timing IN ('on_payment', 'end_of_term', 'immediate')),
    status          text          NOT NULL CHECK (status IN ('pending', 'scheduled', 'applied', 'canceled', 'expired', 'failed')),
    -- what is charged for it, in the currency's major unit (0 for downgrades and operator changes)
    amount          numeric(19,4) NOT NULL DEFAULT 0,
    currency        text          NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- the quote's lines as shown to the customer
    lines           jsonb         NOT NULL DEFAULT '[]',
    proration_date  timestamptz,
    requested_at    timestamptz   NOT NULL,
    effective_at    timestamptz,
    applied_at      timestamptz,
    -- an unpaid upgrade expires then and stops blocking other changes
    payment_due_by  timestamptz,
    payment_reference text,
    -- who asked: a user, or NULL with actor_label 'scheduler'
    actor_id        uuid,
    actor_label     text          NOT NULL,
    reason          text,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now()
);
-- One open change per tenant.
CREATE UNIQUE INDEX plan_changes_one_open ON plan_changes (tenant_id) WHERE status IN ('pending', 'scheduled');
CREATE INDEX plan_changes_due ON plan_changes (effective_at, id) WHERE status = 'scheduled';
CREATE INDEX plan_changes_unpaid ON plan_changes (payment_due_by) WHERE status = 'pending';
CREATE INDEX plan_changes_tenant ON plan_changes (tenant_id, id);

-- Money asked of a customer: a renewal of a period, or an upgrade.
CREATE TABLE charges (
    id              uuid          PRIMARY KEY,
    tenant_id       uuid          NOT NULL REFERENCES tenants (id),
    subscription_id uuid          NOT NULL REFERENCES subscriptions (id),
    kind            text          NOT NULL CHECK (kind IN ('renewal', 'upgrade')),
    plan_change_id  uuid          REFERENCES plan_changes (id),
    amount          numeric(19,4) NOT NULL CHECK (amount >= 0),
    currency        text          NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- processing: claimed by a processor (next_attempt_at is its lease)
    status          text          NOT NULL CHECK (status IN ('pending', 'processing', 'paid', 'failed')),
    -- renewals: the period paid for
    period_start    timestamptz,
    period_end      timestamptz,
    attempts        integer       NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    provider_reference text,
    last_error      text,
    -- one charge per renewal period or plan change: a retry never charges twice
    idempotency_key text          NOT NULL UNIQUE,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX charges_tenant ON charges (tenant_id, id);

-- The processor rewrites these rows in bulk (plan switches, renewals):
-- room on each page lets those be HOT updates, without new index entries.
ALTER TABLE tenants SET (fillfactor = 80);
ALTER TABLE subscriptions SET (fillfactor = 80);
ALTER TABLE charges SET (fillfactor = 70);

-- The sandbox clock's offset from real time (TENANTRY_SANDBOX=1 only).
CREATE TABLE sandbox_clock (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    offset_seconds bigint  NOT NULL DEFAULT 0
);
