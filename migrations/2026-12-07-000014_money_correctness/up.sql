-- Money correctness (issue #16): interval changes reset the billing period,
-- credits have a ledger, checkouts are matched by what we asked, the Stripe
-- price of a subscription is driven to a versioned desired state, late
-- payments are refunded.

-- What the subscription should bill in Stripe changes with every plan change
-- applied, scheduled or canceled: `price_version` counts those changes (bumped
-- in their transaction); `price_synced_version` is the last one a
-- `stripe.sync_price` run saw Stripe match. A run repeats until both agree,
-- so a change made while it runs is never lost.
ALTER TABLE subscriptions
    ADD COLUMN price_version        bigint NOT NULL DEFAULT 0,
    ADD COLUMN price_synced_version bigint NOT NULL DEFAULT 0;

-- A change of billing interval starts a new period when applied; what the
-- period was before, so a failed migration can put it back.
ALTER TABLE plan_changes
    ADD COLUMN previous_period_start timestamptz,
    ADD COLUMN previous_period_end   timestamptz,
    ADD COLUMN previous_anchor       timestamptz;

-- Refunds are charges too (money going back, amount positive), and an
-- abandoned upgrade's charge is canceled. `credit_applied`: the part of a
-- renewal paid from the credit ledger (amount is what the provider charges).
ALTER TABLE charges DROP CONSTRAINT charges_kind_check,
    ADD CONSTRAINT charges_kind_check CHECK (kind IN ('renewal', 'upgrade', 'refund'));
ALTER TABLE charges DROP CONSTRAINT charges_status_check,
    ADD CONSTRAINT charges_status_check CHECK (status IN ('pending', 'processing', 'paid', 'failed', 'canceled'));
ALTER TABLE charges ADD COLUMN credit_applied numeric(19,4) NOT NULL DEFAULT 0 CHECK (credit_applied >= 0);
CREATE INDEX charges_status ON charges (status, id);

-- The credit ledger: a credit granted (positive, e.g. a failed migration's
-- payment) and credit applied to a charge (negative). The balance of a
-- subscription in a currency is the sum. `source` names what caused the row
-- (`plan_change:{id}:migration_failed`, `charge:{id}`, `invoice:{id}`…) and
-- is unique, so each is recorded exactly once.
CREATE TABLE credits (
    id                 uuid          PRIMARY KEY,
    tenant_id          uuid          NOT NULL REFERENCES tenants (id),
    subscription_id    uuid          NOT NULL REFERENCES subscriptions (id),
    -- major unit of `currency`; > 0 granted, < 0 applied
    amount             numeric(19,4) NOT NULL CHECK (amount <> 0),
    currency           text          NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    kind               text          NOT NULL CHECK (kind IN ('granted', 'applied')),
    reason             text          NOT NULL,
    source             text          NOT NULL UNIQUE,
    -- applied: the charge it paid part of
    charge_id          uuid          REFERENCES charges (id),
    -- Stripe: the customer balance transaction that carries it (cbtxn_…)
    provider_reference text,
    created_at         timestamptz   NOT NULL DEFAULT now(),
    CHECK ((kind = 'granted') = (amount > 0))
);
CREATE INDEX credits_subscription ON credits (subscription_id, currency);
CREATE INDEX credits_tenant ON credits (tenant_id, id);

-- Checkout sessions: one row per session (a key can get a new session when
-- the old one expired), with what we asked, so a completed session is
-- applied only when it is ours, for that purpose, amount and currency.
ALTER TABLE stripe_checkouts DROP CONSTRAINT stripe_checkouts_pkey;
ALTER TABLE stripe_checkouts
    ADD PRIMARY KEY (session_id),
    -- signup | upgrade | payment
    ADD COLUMN purpose        text,
    ADD COLUMN plan_change_id uuid REFERENCES plan_changes (id),
    -- minor units of `currency`
    ADD COLUMN amount_minor   bigint,
    ADD COLUMN currency       text,
    -- Stripe's expires_at (24 h after creation unless set)
    ADD COLUMN expires_at     timestamptz,
    ADD COLUMN status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'complete', 'expired'));
UPDATE stripe_checkouts SET purpose = split_part(key, ':', 1), expires_at = created_at + interval '24 hours';
CREATE INDEX stripe_checkouts_key ON stripe_checkouts (key, created_at DESC);
