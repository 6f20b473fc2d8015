# Triple Academy. `make run` and `make test` do their own set-up (uv is bootstrapped with pip).
SHELL := /bin/bash
UV = $(shell command -v uv 2>/dev/null || (test -x .tools/bin/uv && echo .tools/bin/uv) || echo "python3 -m uv")
PACKAGES := -p common -p contracts -p auth -p catalog -p billing -p playback -p gateway
TEST_DIRS := tests libs/common/tests libs/contracts/tests $(wildcard services/*/tests)

.PHONY: help bootstrap sync run test test-unit test-integration test-e2e test-faults test-fast lint format up down migrate bench bench-gateway bench-hot dev-cert clean \
	web web-deps web-ensure web-client web-lint

help:
	@echo "make run      the whole platform embedded on http://127.0.0.1:8000 (demo data)"
	@echo "make test     unit, integration and e2e tests (needs PostgreSQL, Redis, RabbitMQ, nginx)"
	@echo "make test-unit / test-integration / test-e2e  one tier of make test"
	@echo "make test-faults  only the fault-injection scenarios (part of make test), with their counts printed"
	@echo "make lint     ruff + mypy"
	@echo "make up       distributed mode as local processes behind nginx on http://127.0.0.1:8080"
	@echo "              (UP_ARGS=\"--pg-admin-dsn ... --redis-url ... --broker-url ...\" to use other servers)"
	@echo "make down     stop what 'make up' started"
	@echo "make migrate  bootstrap the database/roles/schemas and run every service's migrations"
	@echo "make bench    benchmarks under bench/ (against 'make up')"
	@echo "make bench-hot  hot paths through the edge as ratios to a hello-world (own platform, wrk)"
	@echo "make dev-cert the gateway's development CA and TLS certificate in var/dev-certs"
	@echo "make web      build the web app (web/dist, served at / by make run and make up)"
	@echo "make web-client  regenerate web/openapi/*.json and the typed client from the services"

bootstrap:
	@command -v uv >/dev/null 2>&1 || test -x .tools/bin/uv || python3 -m uv --version >/dev/null 2>&1 \
		|| (echo "make: installing uv (the Python package manager) with pip..." \
		    && (python3 -m pip install --quiet --user uv 2>/dev/null \
		        || (python3 -m venv .tools && .tools/bin/pip install --quiet uv)))
	@$(MAKE) --no-print-directory sync

# The first sync downloads and installs every package (minutes): say so, and let uv show its progress.
sync:
	@test -d .venv || echo "make: first run, installing the Python packages into .venv with uv (a few minutes)..."
	@$(UV) sync --frozen $(if $(wildcard .venv),--quiet,)

run: bootstrap web-ensure
	$(UV) run python -m gateway

test: bootstrap web-ensure
	$(UV) run pytest

test-faults: bootstrap
	$(UV) run pytest tests/faults -q -s

test-fast: bootstrap web-ensure
	$(UV) run pytest --ignore=tests/e2e --ignore=tests/faults

# The tiers of `make test` (markers set by path in conftest.py).
test-unit: bootstrap
	$(UV) run pytest -m unit

test-integration: bootstrap
	$(UV) run pytest -m integration

test-e2e: bootstrap web-ensure
	$(UV) run pytest -m e2e

lint: bootstrap web-lint
	$(UV) run ruff check .
	$(UV) run mypy $(PACKAGES)
	$(UV) run mypy $(TEST_DIRS)  # tests call every package's helpers: a changed signature fails here

# The web app (web/, Node.js 20+ and npm). Without npm these targets say so and `make run` serves
# the API alone; `make test` skips the web checks.
NPM := $(shell command -v npm 2>/dev/null)
WEB_SOURCES := $(shell find web/src web/index.html web/package.json web/package-lock.json web/vite.config.ts -type f 2>/dev/null)

web-deps:
ifdef NPM
	@test web/node_modules/.package-lock.json -nt web/package-lock.json || (cd web && npm ci --no-audit --no-fund)
endif

web/dist/index.html: $(WEB_SOURCES)
	$(MAKE) --no-print-directory web-deps
	cd web && npm run build

web: web/dist/index.html

web-ensure:
ifdef NPM
	@$(MAKE) --no-print-directory web
else
	@echo "Node.js/npm not found: serving the API only. For the web app at /, install Node.js 20+ and npm, then run make web."
endif

web-client: bootstrap web-deps
	$(UV) run python scripts/openapi_dump.py
	cd web && npm run client

web-lint: web-deps
ifdef NPM
	cd web && npx eslint . && npx tsc --noEmit -p .
endif

format: bootstrap
	$(UV) run ruff check --fix .

up: bootstrap
	$(UV) run python -m gateway.distributed up $(UP_ARGS)

down:
	$(UV) run python -m gateway.distributed down

migrate: bootstrap
	$(UV) run python -m gateway.distributed migrate

bench: bootstrap
	$(UV) run python bench/core_path.py

bench-gateway: bootstrap
	$(UV) run python bench/gateway_overhead.py

bench-hot: bootstrap
	$(UV) run python bench/hot_paths.py $(BENCH_ARGS)

dev-cert: bootstrap
	$(UV) run python -m gateway.devcert var/dev-certs

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache web/dist
