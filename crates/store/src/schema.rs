// @generated automatically by Diesel CLI.

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

diesel::joinable!(plans -> products (product_id));

diesel::allow_tables_to_appear_in_same_query!(plans, products,);
