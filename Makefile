# newsflow — `make demo` and `make test` are all a fresh clone needs.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
STAMP := $(VENV)/.installed
STAMP_DEV := $(VENV)/.installed-dev
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup setup-dev bytecode demo test check lint format bench newsroom airflow cluster compose-check chromium postgres redis clean

## setup: create .venv from uv.lock with what the CLI and the demo need, no Airflow and no test
## tools (a fast no-op when nothing changed; --inexact keeps what setup-dev added). Packages
## are compiled to bytecode once, here: with PYTHONDONTWRITEBYTECODE set (as on CI), every
## process would otherwise compile what it imports (docs/development.md)
setup: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --no-default-groups --inexact --compile-bytecode
	@touch $(STAMP)

## setup-dev: also the groups `dev` (pytest, ruff, ...) and `airflow`, for make test, lint,
## bench and airflow
setup-dev: $(STAMP_DEV)

$(STAMP_DEV): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --compile-bytecode
	@touch $(STAMP) $(STAMP_DEV)

## demo: serve the bundled sample newsroom on 127.0.0.1 and ingest it into data/demo.sqlite
demo: setup
	$(VENV)/bin/newsflow demo

## test: the whole test suite on every core (tests using ../shared/corpus skip when it is
## absent), its 20 slowest tests printed, and the docker-compose file validated
test: setup-dev compose-check chromium postgres redis bytecode
	$(VENV)/bin/pytest

## check: the inner loop (docs/development.md): lint, then every test not marked slow (none
## that starts Airflow, Chromium, a spaCy model or newsflow processes), on three workers: what
## is left is CPU-bound, and a fourth on two cores made it slower (docs/development.md)
check: lint postgres bytecode
	$(VENV)/bin/pytest -m "not slow" -n 3

## bytecode: newsflow's own modules compiled (a second; the processes the tests start then
## compile nothing, whatever PYTHONDONTWRITEBYTECODE says)
bytecode: setup
	@$(VENV)/bin/python -m compileall -q -j 0 pipeline dags tests

## chromium: Debian's headless Chromium and its driver, for the report's rendering test
chromium:
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { \
	  echo "installing Debian's chromium and chromium-driver for the report test"; \
	  $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
	  || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; }

## postgres: Debian's PostgreSQL server binaries, for the tests of the lake on a Postgres
## catalog (each test session starts its own cluster in a temp dir on 127.0.0.1; no service)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the Postgres-catalog tests"; \
	  $(SUDO) apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 \
	  || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }; }

## redis: Debian's redis-server, Celery's broker in `make cluster` and the cluster tests (each
## starts its own on 127.0.0.1; no service)
redis:
	@[ -x /usr/bin/redis-server ] || { \
	  echo "installing Debian's redis-server for the cluster tests"; \
	  $(SUDO) apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 \
	  || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }; }

## compose-check: validate docker-compose.yml with the example secrets (installs Debian's
## docker-compose when missing; no Docker engine needed)
SUDO := $(shell [ "$$(id -u)" != 0 ] && command -v sudo)
compose-check:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  echo "installing Debian's docker-compose to validate docker-compose.yml"; \
	  $(SUDO) apt-get install -y --no-install-recommends docker-compose >/dev/null 2>&1 \
	  || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }; }
	docker-compose --env-file .env.example -f docker-compose.yml config -q

## lint: ruff over everything, mypy over pipeline/newsflow ([tool.mypy] in pyproject.toml)
lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff check dags/ --select AIR3
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bench: the performance and quality benchmarks (benchmarks/README.md), ~25 minutes; each
## prints its figures (benchmarks.stories, .search and .ingest run on their own)
bench: setup-dev
	$(VENV)/bin/python -m benchmarks.extraction
	$(VENV)/bin/python -m benchmarks.tagging --quality
	$(VENV)/bin/python -m benchmarks.e2e --articles 5000
	$(VENV)/bin/python -m benchmarks.vs_peers
	$(VENV)/bin/python -m benchmarks.scale
	$(VENV)/bin/python -m benchmarks.polling_week
	$(VENV)/bin/python -m benchmarks.one_host
	$(VENV)/bin/python -m benchmarks.frontier

## airflow: Airflow standalone on 127.0.0.1:8080 with the DAGs, against the sample newsroom
## unless NEWSFLOW_FEEDS is set (Ctrl-C stops everything)
airflow: setup-dev
	scripts/airflow.sh

## cluster: the scaled-out shape on this machine, in the foreground (docs/operations.md): PostgreSQL
## (Airflow's metadata, the lake's catalog), Redis, an in-memory S3 server (moto), Airflow's
## api-server on 127.0.0.1:8080, scheduler, dag-processor, triggerer and CLUSTER_WORKERS (2)
## Celery workers, against the sample newsroom unless NEWSFLOW_FEEDS is set (Ctrl-C stops all)
cluster: setup-dev postgres redis
	$(VENV)/bin/python scripts/cluster.py

## newsroom: serve the sample newsroom in the foreground on 127.0.0.1:8765
newsroom: setup
	$(VENV)/bin/newsflow newsroom

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
