# stepd: `make run` serves on 127.0.0.1:8080 with ./workspace as the root;
# `make test` runs the linters (OpenAPI too) and the test suite. Both create .venv on first use:
# `make run` installs the server's runtime dependencies only, `make test` adds what the tests
# need (the dev extras and the Python client, clients/python) to the same environment.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-stamp
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
CLIENT := clients/python
PIP_INSTALL := $(BIN)/python -m pip install --quiet --constraint constraints.txt

.PHONY: run test lint typecheck pytest openapi openapi-lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) --editable .
	touch $@

$(STAMP): $(RUNTIME_STAMP) $(CLIENT)/pyproject.toml
	$(PIP_INSTALL) --editable '.[dev]' --editable $(CLIENT)
	touch $@

# Node tools (Redocly CLI), exactly as package-lock.json pins them.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(RUNTIME_STAMP)
	mkdir -p workspace
	$(BIN)/stepd serve --workspace-root ./workspace --log-format console

test: lint typecheck openapi-lint pytest

lint: $(STAMP)
	$(BIN)/ruff check app tests $(CLIENT)
	$(BIN)/ruff format --check app tests $(CLIENT)

typecheck: $(STAMP)
	$(BIN)/mypy app $(CLIENT)/stepd_client

# A private temp root, emptied by rm (pytest's own clean-up recurses, and some test
# trees are deeper than Python's recursion limit).
pytest: $(STAMP)
	rm -rf .pytest-tmp
	$(BIN)/pytest --basetemp=.pytest-tmp

openapi: $(STAMP)
	$(BIN)/python -m app.api.spec openapi

# Rules and accepted exceptions: redocly.yaml, .redocly.lint-ignore.yaml.
openapi-lint: $(NODE_STAMP)
	REDOCLY_SUPPRESS_UPDATE_NOTICE=true node_modules/.bin/redocly lint openapi/openapi.json

# Benchmarks (docs/PERFORMANCE.md): minutes long, never part of `make test`. wrk is the
# load generator (Debian: apt-get install wrk); idempotency_stores starts a PostgreSQL of
# its own (Debian: apt-get install postgresql).
bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "make bench: wrk is missing: apt-get install wrk" >&2; exit 1; }
	$(BIN)/python -m bench.big_trees
	$(BIN)/python -m bench.small_requests
	$(BIN)/python -m bench.request_cost
	$(BIN)/python -m bench.batch_vs_single
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.glob_walks
	$(BIN)/python -m bench.keyed_requests
	$(BIN)/python -m bench.idempotency_stores
	$(BIN)/python -m bench.purge_under_load

clean:
	rm -rf $(VENV) node_modules .pytest-tmp .mypy_cache .ruff_cache .pytest_cache .hypothesis
