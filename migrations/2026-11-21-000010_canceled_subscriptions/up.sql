-- The billing processor ends the service of canceled subscriptions whose
-- paid period is over (store::billing::end_canceled) on every run: only the
-- canceled ones, by period end.
CREATE INDEX subscriptions_canceled_period_end ON subscriptions (current_period_end) WHERE status = 'canceled';
