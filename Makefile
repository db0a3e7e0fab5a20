# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
UV_VERSION := 0.13.9
VENV := .venv
# GraphiQL's browser files, installed into the venv (see below).
GRAPHIQL := $(VENV)/share/cv-graphiql/installed.json
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test test-faults test-pythons lint venv schema bench clean

venv: $(VENV)/.synced $(GRAPHIQL)

# The virtualenv, from the lock file only (uv.lock); rebuilt when the lock changes.
$(VENV)/.synced: pyproject.toml uv.lock
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv sync --frozen --inexact
	touch $@

# GraphiQL's browser files (graphiql, react, react-dom) from the npm registry, at the
# versions and sha512 digests pinned in api/graphiql/assets.json; the web serves them.
# Fetched here, once per change of the pins, never at run time.
$(GRAPHIQL): api/graphiql/assets.json scripts/graphiql_assets.py | $(VENV)/.synced
	$(VENV)/bin/python scripts/graphiql_assets.py
	touch $@

# schema.graphql, the committed SDL, from the code (a test fails when they differ).
schema: venv
	$(VENV)/bin/python -m api.graphql.sdl

run: venv
	scripts/run

test: venv
	scripts/test

# Every fault run over real processes, the second runs of each fault too (marker
# `extra`: the killed worker on RabbitMQ, Redis restarted at once, a worker process
# killed under its supervisor, RabbitMQ restarted), which `make test` leaves out to stay
# well under 15 min.
test-faults: venv
	scripts/test -m "faults or extra" tests/faults

# The fast tests (store, workflows, providers, api) on each of Python 3.11, 3.12 and 3.13
# found here, each in a venv from the lock under var/pythons/; a missing one is skipped.
# Not part of `make test` (minutes per Python). Arguments: make test-pythons ARGS="-x".
test-pythons: venv
	scripts/test-pythons $(ARGS)

# The benchmark: starts its own Redis, database, fakes, web and workers; figures beside
# their baselines, written to var/bench.json. Options: make bench ARGS="--full" (or --help).
bench: venv
	bash -c 'source scripts/services.sh && ensure_postgres'
	$(VENV)/bin/python -m bench $(ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
