-- Stripe: every event received (webhook or reconciliation) by its id, the
-- Stripe objects our catalog maps to, and the checkout sessions we opened.

-- One row per Stripe event id, written in the same transaction as the
-- event's effects: a second delivery of the same id finds the row and does
-- nothing (Stripe delivers at least once: docs.stripe.com/webhooks#handle-duplicate-events).
CREATE TABLE stripe_events (
    id           text        PRIMARY KEY,            -- evt_…
    type         text        NOT NULL,               -- e.g. invoice.paid
    api_version  text,                               -- the version `data` was rendered with
    payload      jsonb       NOT NULL,               -- the event as received
    source       text        NOT NULL CHECK (source IN ('webhook', 'reconcile', 'operator')),
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,                        -- effects applied (or nothing to do)
    error        text                                -- why it had no effect (unknown tenant…)
);
CREATE INDEX stripe_events_received ON stripe_events (received_at);

-- Our catalog's Stripe twins: a Product per product, a Price per plan.
CREATE TABLE stripe_catalog (
    local_id     uuid        PRIMARY KEY,            -- products.id or plans.id
    kind         text        NOT NULL CHECK (kind IN ('product', 'price')),
    stripe_id    text        NOT NULL UNIQUE,        -- prod_… or price_…
    -- what the Stripe object was made from: the product's name, or the plan's
    -- "amount-in-minor-units currency interval"; a change means update (product)
    -- or a new Price and the old one archived (plan)
    fingerprint  text        NOT NULL,
    synced_at    timestamptz NOT NULL DEFAULT now()
);

-- Checkout sessions opened for a signup or a payment, by our key
-- (`signup:{subscription id}`, `upgrade:{plan change id}`, …).
CREATE TABLE stripe_checkouts (
    key          text        PRIMARY KEY,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    session_id   text        NOT NULL,
    url          text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Webhooks find our subscription by Stripe's ids.
CREATE INDEX subscriptions_provider_subscription ON subscriptions (provider_subscription_id) WHERE provider_subscription_id IS NOT NULL;
CREATE INDEX subscriptions_provider_customer ON subscriptions (provider_customer_id) WHERE provider_customer_id IS NOT NULL;
