-- Docker products: the container's environment template, its named
-- volumes, and the compose service that serves a stack.
ALTER TABLE products
    -- {"NAME": "template with {{tenant_slug}}, {{db_name}}, {{db_user}}, {{db_password}}, {{db_host}}, {{db_port}}, {{public_url}}"}
    ADD COLUMN env           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(env) = 'object'),
    -- {"volume name": "/mount/path"}
    ADD COLUMN volumes       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(volumes) = 'object'),
    -- the service of compose_stack that gets the host port and the environment
    ADD COLUMN stack_service text,
    ADD CONSTRAINT products_docker_settings CHECK (
        driver = 'docker' OR (env = '{}' AND volumes = '{}' AND stack_service IS NULL)
    ),
    ADD CONSTRAINT products_stack_service CHECK (stack_service IS NULL OR compose_stack IS NOT NULL);
