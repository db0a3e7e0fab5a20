# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
UV_VERSION := 0.13.9
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint venv bench clean

venv: $(VENV)/.synced

# The virtualenv, from the lock file only (uv.lock); rebuilt when the lock changes.
$(VENV)/.synced: pyproject.toml uv.lock
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv sync --frozen --inexact
	touch $@

run: venv
	scripts/run

test: venv
	scripts/test

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
