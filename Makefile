# Tenantry — developer commands. `make run` and `make test` are the two a
# newcomer needs (see README.md); the rest are for working on the code.

SHELL := /bin/bash
# The schema check compares against this version's `diesel print-schema` output.
DIESEL_CLI_VERSION := 2.3.14
# The generator of the Python client a test drives the API with (PyPI).
OPENAPI_PYTHON_CLIENT_VERSION := 0.29.1
.DEFAULT_GOAL := help

.PHONY: help run demo test fmt lint check-layers openapi schema tools bench bench-placement bench-provision clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

run: ## start the whole control plane: PostgreSQL, simulated Proxmox nodes, Stripe stand-in, demo admin
	@scripts/run

demo: ## drive the main path (signup → paid → provisioned → upgrade → migrated → downgrade) against `make run`
	@scripts/demo

test: ## fmt check, clippy -D warnings, layer check, every test (starts its own PostgreSQL unless DATABASE_URL is set)
	@scripts/test

fmt: ## format the code
	cargo fmt --all

lint: ## clippy with warnings as errors
	cargo clippy --workspace --all-targets --locked -- -D warnings

check-layers: ## prove the layers: `domain` without diesel/actix/tokio, `billing` and `provisioning` apart, actix only in `api`
	@scripts/check-layers

openapi: ## regenerate openapi/openapi.json from the handlers
	cargo run --quiet --locked --bin tenantry -- openapi > openapi/openapi.json
	@echo "openapi/openapi.json refreshed"

schema: ## regenerate crates/store/src/schema.rs from the migrations (needs a PostgreSQL: DATABASE_URL or the test cluster)
	@scripts/schema

tools: ## install the tools `make test` needs (cargo-nextest, diesel CLI, openapi-python-client); `make test` runs this itself
	@command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
	@diesel --version 2>/dev/null | grep -q "$(DIESEL_CLI_VERSION)" || cargo install diesel_cli --version $(DIESEL_CLI_VERSION) --no-default-features --features postgres --locked
	@openapi-python-client --version 2>/dev/null | grep -q "$(OPENAPI_PYTHON_CLIENT_VERSION)" || python3 -m pip install --quiet --disable-pip-version-check "openapi-python-client==$(OPENAPI_PYTHON_CLIENT_VERSION)"

bench-placement: ## µs per placement decision over 1,000 nodes (release build; figures in bench/README.md)
	cargo bench --locked -p tenantry-domain --bench placement

bench-provision: ## tenants/s: 1,000 tenants provisioned against pve-sim, 2/4/8 workers (release build; figures in bench/README.md)
	@bench/provision.sh

clean: ## remove build output and the local data dir (stops its PostgreSQL first)
	-scripts/pg-cluster stop "$${TENANTRY_DATA_DIR:-./var}/postgres"
	-scripts/pg-cluster stop ./var/test-postgres
	cargo clean
	rm -rf ./var
