-- Identity and access: users, refresh-token families, API tokens, TOTP
-- recovery codes, and the append-only activity log.

CREATE TABLE users (
    id              uuid        PRIMARY KEY,
    email           text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    -- argon2id PHC string
    password_hash   text        NOT NULL,
    role            text        NOT NULL CHECK (role IN ('admin', 'operator', 'tenant_owner', 'tenant_member')),
    -- set exactly for the tenant roles; the tenants issue adds the foreign key
    tenant_id       uuid,
    status          text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    -- TOTP seed, AES-256-GCM encrypted under the key named by totp_key_id
    totp_secret     bytea,
    totp_key_id     text,
    totp_enabled    boolean     NOT NULL DEFAULT false,
    -- last accepted TOTP time step (seconds since the Unix epoch / 30): a code is accepted once
    totp_last_step  bigint,
    failed_logins   integer     NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_tenant_role CHECK ((role IN ('tenant_owner', 'tenant_member')) = (tenant_id IS NOT NULL)),
    CONSTRAINT users_totp_enabled_has_secret CHECK (NOT totp_enabled OR (totp_secret IS NOT NULL AND totp_key_id IS NOT NULL))
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_tenant_id_idx ON users (tenant_id) WHERE tenant_id IS NOT NULL;

CREATE TABLE recovery_codes (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the code, hex
    code_hash  text        NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT recovery_codes_unique UNIQUE (user_id, code_hash)
);

-- Refresh tokens rotate on every use; all tokens of one login share a family.
-- Presenting a token that was already rotated revokes its whole family.
CREATE TABLE refresh_tokens (
    id          uuid        PRIMARY KEY,
    family_id   uuid        NOT NULL,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the token, hex
    token_hash  text        NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE api_tokens (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- SHA-256 of the whole secret (tnt_…), hex; the secret itself is shown once
    token_hash   text        NOT NULL UNIQUE,
    -- first characters of the secret, to recognise it in lists
    prefix       text        NOT NULL,
    scopes       text[]      NOT NULL,
    tenant_id    uuid,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, id);

-- Append-only: no UPDATE or DELETE (enforced by trigger), no foreign keys,
-- so deleting a user or tenant never removes its history.
CREATE TABLE activity_log (
    id          uuid        PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    -- who: a user (and the API token used, if any), or a named system actor
    actor_id    uuid,
    actor_token_id uuid,
    actor_label text        NOT NULL,
    tenant_id   uuid,
    action      text        NOT NULL,
    target_type text,
    target_id   text,
    before      jsonb,
    after       jsonb,
    client_ip   text,
    user_agent  text,
    request_id  text
);
CREATE INDEX activity_log_tenant_idx ON activity_log (tenant_id, id);
CREATE INDEX activity_log_actor_idx ON activity_log (actor_id, id);
CREATE INDEX activity_log_action_idx ON activity_log (action, id);

CREATE FUNCTION activity_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'activity_log is append-only';
END;
$$;
CREATE TRIGGER activity_log_append_only
    BEFORE UPDATE OR DELETE ON activity_log
    FOR EACH ROW EXECUTE FUNCTION activity_log_append_only();
