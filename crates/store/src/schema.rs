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

diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(plans -> products (product_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    activity_log,
    api_tokens,
    plans,
    products,
    recovery_codes,
    refresh_tokens,
    users,
);
