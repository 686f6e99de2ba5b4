ALTER TABLE products
    DROP CONSTRAINT products_stack_service,
    DROP CONSTRAINT products_docker_settings,
    DROP COLUMN stack_service,
    DROP COLUMN volumes,
    DROP COLUMN env;
