// @generated automatically by Diesel CLI.

diesel::table! {
    activity_log (id) {
        id -> Uuid,
        occurred_at -> Timestamptz,
        actor_id -> Nullable<Uuid>,
        actor_token_id -> Nullable<Uuid>,
        actor_label -> Text,
        tenant_id -> Nullable<Uuid>,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        before -> Nullable<Jsonb>,
        after -> Nullable<Jsonb>,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    alerts (id) {
        id -> Uuid,
        kind -> Text,
        severity -> Text,
        message -> Text,
        tenant_id -> Nullable<Uuid>,
        subject -> Text,
        created_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        token_hash -> Text,
        prefix -> Text,
        scopes -> Array<Nullable<Text>>,
        tenant_id -> Nullable<Uuid>,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    charges (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        subscription_id -> Uuid,
        kind -> Text,
        plan_change_id -> Nullable<Uuid>,
        amount -> Numeric,
        currency -> Text,
        status -> Text,
        period_start -> Nullable<Timestamptz>,
        period_end -> Nullable<Timestamptz>,
        attempts -> Int4,
        next_attempt_at -> Nullable<Timestamptz>,
        provider_reference -> Nullable<Text>,
        last_error -> Nullable<Text>,
        idempotency_key -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        credit_applied -> Numeric,
    }
}

diesel::table! {
    credits (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        subscription_id -> Uuid,
        amount -> Numeric,
        currency -> Text,
        kind -> Text,
        reason -> Text,
        source -> Text,
        charge_id -> Nullable<Uuid>,
        provider_reference -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    deployments (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        instance_id -> Nullable<Uuid>,
        node_id -> Nullable<Uuid>,
        kind -> Text,
        host_port -> Nullable<Int4>,
        database_name -> Text,
        database_role -> Text,
        database_password -> Bytea,
        database_password_key_id -> Text,
        url -> Text,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        request_hash -> Text,
        status -> Text,
        response_status -> Nullable<Int4>,
        response_headers -> Nullable<Jsonb>,
        response_body -> Nullable<Bytea>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    instances (id) {
        id -> Uuid,
        node_id -> Uuid,
        product_id -> Uuid,
        kind -> Text,
        external_id -> Nullable<Text>,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        cpu_cores -> Int4,
        memory_mib -> Int4,
        storage_gib -> Int4,
        hostname -> Nullable<Text>,
        host_port -> Nullable<Int4>,
        upstream_host -> Nullable<Text>,
        upstream_port -> Nullable<Int4>,
        upstream_read_at -> Nullable<Timestamptz>,
        high_availability -> Bool,
    }
}

diesel::table! {
    invitations (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        email -> Text,
        role -> Text,
        token_hash -> Text,
        invited_by -> Nullable<Uuid>,
        expires_at -> Timestamptz,
        accepted_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Uuid,
        kind -> Text,
        tenant_id -> Nullable<Uuid>,
        status -> Text,
        payload -> Jsonb,
        dedup_key -> Nullable<Text>,
        attempts -> Int4,
        max_attempts -> Int4,
        run_at -> Timestamptz,
        step -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        locked_by -> Nullable<Text>,
        heartbeat_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    nodes (id) {
        id -> Uuid,
        kind -> Text,
        name -> Text,
        api_url -> Text,
        pve_node -> Nullable<Text>,
        credentials -> Nullable<Bytea>,
        credentials_key_id -> Nullable<Text>,
        tls_ca_pem -> Nullable<Text>,
        tls_fingerprint -> Nullable<Text>,
        status -> Text,
        cpu_cores -> Int4,
        memory_mib -> Int8,
        storage_gib -> Int8,
        max_instances -> Int4,
        version -> Nullable<Text>,
        last_checked_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    plan_changes (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        subscription_id -> Uuid,
        from_plan_id -> Uuid,
        to_plan_id -> Uuid,
        from_deployment -> Text,
        to_deployment -> Text,
        kind -> Text,
        timing -> Text,
        status -> Text,
        amount -> Numeric,
        currency -> Text,
        lines -> Jsonb,
        proration_date -> Nullable<Timestamptz>,
        requested_at -> Timestamptz,
        effective_at -> Nullable<Timestamptz>,
        applied_at -> Nullable<Timestamptz>,
        payment_due_by -> Nullable<Timestamptz>,
        payment_reference -> Nullable<Text>,
        actor_id -> Nullable<Uuid>,
        actor_label -> Text,
        reason -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        previous_period_start -> Nullable<Timestamptz>,
        previous_period_end -> Nullable<Timestamptz>,
        previous_anchor -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    plans (id) {
        id -> Uuid,
        product_id -> Uuid,
        code -> Text,
        name -> Text,
        tier_rank -> Int4,
        price -> Numeric,
        currency -> Text,
        billing_interval -> Text,
        deployment -> Text,
        cpu_cores -> Int4,
        memory_mib -> Int4,
        storage_gib -> Int4,
        backup_schedule -> Text,
        sla_percent -> Nullable<Numeric>,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    products (id) {
        id -> Uuid,
        slug -> Text,
        name -> Text,
        description -> Nullable<Text>,
        driver -> Text,
        lxc_template -> Nullable<Text>,
        image -> Nullable<Text>,
        compose_stack -> Nullable<Text>,
        internal_port -> Int4,
        shared_max_tenants -> Nullable<Int4>,
        shared_cpu_cores -> Nullable<Int4>,
        shared_memory_mib -> Nullable<Int4>,
        shared_storage_gib -> Nullable<Int4>,
        dedicated_port_start -> Nullable<Int4>,
        dedicated_port_end -> Nullable<Int4>,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        env -> Jsonb,
        volumes -> Jsonb,
        stack_service -> Nullable<Text>,
        shared_tenant_connection_limit -> Nullable<Int4>,
    }
}

diesel::table! {
    provisioning_events (id) {
        id -> Uuid,
        kind -> Text,
        tenant_id -> Uuid,
        plan_change_id -> Nullable<Uuid>,
        detail -> Jsonb,
        created_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Uuid,
        user_id -> Uuid,
        code_hash -> Text,
        used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        family_id -> Uuid,
        user_id -> Uuid,
        token_hash -> Text,
        expires_at -> Timestamptz,
        rotated_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    routing_state (id) {
        id -> Bool,
        pushed_at -> Nullable<Timestamptz>,
        pushed_hash -> Nullable<Text>,
        routes -> Int4,
        failures -> Int4,
        last_error -> Nullable<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sandbox_clock (singleton) {
        singleton -> Bool,
        offset_seconds -> Int8,
    }
}

diesel::table! {
    stripe_catalog (local_id) {
        local_id -> Uuid,
        kind -> Text,
        stripe_id -> Text,
        fingerprint -> Text,
        synced_at -> Timestamptz,
    }
}

diesel::table! {
    stripe_checkouts (session_id) {
        key -> Text,
        tenant_id -> Uuid,
        session_id -> Text,
        url -> Text,
        created_at -> Timestamptz,
        purpose -> Nullable<Text>,
        plan_change_id -> Nullable<Uuid>,
        amount_minor -> Nullable<Int8>,
        currency -> Nullable<Text>,
        expires_at -> Nullable<Timestamptz>,
        status -> Text,
    }
}

diesel::table! {
    stripe_events (id) {
        id -> Text,
        #[sql_name = "type"]
        type_ -> Text,
        api_version -> Nullable<Text>,
        payload -> Jsonb,
        source -> Text,
        received_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        plan_id -> Uuid,
        status -> Text,
        current_period_start -> Nullable<Timestamptz>,
        current_period_end -> Nullable<Timestamptz>,
        provider -> Text,
        provider_customer_id -> Nullable<Text>,
        provider_subscription_id -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        billing_anchor -> Nullable<Timestamptz>,
        saved_payment_method -> Bool,
        past_due_since -> Nullable<Timestamptz>,
        price_version -> Int8,
        price_synced_version -> Int8,
    }
}

diesel::table! {
    tenant_domains (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        hostname -> Text,
        status -> Text,
        verification_token -> Text,
        verified_at -> Nullable<Timestamptz>,
        last_checked_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tenants (id) {
        id -> Uuid,
        slug -> Text,
        company_name -> Text,
        product_id -> Uuid,
        plan_id -> Uuid,
        deployment -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        provisioned_at -> Nullable<Timestamptz>,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        tenant_id -> Nullable<Uuid>,
        status -> Text,
        totp_secret -> Nullable<Bytea>,
        totp_key_id -> Nullable<Text>,
        totp_enabled -> Bool,
        totp_last_step -> Nullable<Int8>,
        failed_logins -> Int4,
        locked_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(alerts -> tenants (tenant_id));
diesel::joinable!(api_tokens -> tenants (tenant_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(charges -> plan_changes (plan_change_id));
diesel::joinable!(charges -> subscriptions (subscription_id));
diesel::joinable!(charges -> tenants (tenant_id));
diesel::joinable!(credits -> charges (charge_id));
diesel::joinable!(credits -> subscriptions (subscription_id));
diesel::joinable!(credits -> tenants (tenant_id));
diesel::joinable!(deployments -> instances (instance_id));
diesel::joinable!(deployments -> nodes (node_id));
diesel::joinable!(deployments -> tenants (tenant_id));
diesel::joinable!(instances -> nodes (node_id));
diesel::joinable!(instances -> products (product_id));
diesel::joinable!(invitations -> tenants (tenant_id));
diesel::joinable!(jobs -> tenants (tenant_id));
diesel::joinable!(plan_changes -> subscriptions (subscription_id));
diesel::joinable!(plan_changes -> tenants (tenant_id));
diesel::joinable!(plans -> products (product_id));
diesel::joinable!(provisioning_events -> plan_changes (plan_change_id));
diesel::joinable!(provisioning_events -> tenants (tenant_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(stripe_checkouts -> plan_changes (plan_change_id));
diesel::joinable!(stripe_checkouts -> tenants (tenant_id));
diesel::joinable!(subscriptions -> plans (plan_id));
diesel::joinable!(subscriptions -> tenants (tenant_id));
diesel::joinable!(tenant_domains -> tenants (tenant_id));
diesel::joinable!(tenants -> plans (plan_id));
diesel::joinable!(tenants -> products (product_id));
diesel::joinable!(users -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    activity_log,
    alerts,
    api_tokens,
    charges,
    credits,
    deployments,
    idempotency_keys,
    instances,
    invitations,
    jobs,
    nodes,
    plan_changes,
    plans,
    products,
    provisioning_events,
    recovery_codes,
    refresh_tokens,
    routing_state,
    sandbox_clock,
    stripe_catalog,
    stripe_checkouts,
    stripe_events,
    subscriptions,
    tenant_domains,
    tenants,
    users,
);
