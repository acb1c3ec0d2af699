# Two commands: `make run` (embedded SQLite default) and `make test` (SQLite + a throwaway PostgreSQL).
VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock
HOST    ?= 127.0.0.1
PORT    ?= 8000
PYTEST_ARGS ?=

.PHONY: run test lint bench clean

$(PY):
	python3 -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml requirements.lock | $(PY)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml requirements.lock | $(PY)
	$(PIP) -e '.[test]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(VENV)/bin/fleetprompt db upgrade
	$(VENV)/bin/fleetprompt demo seed
	@echo "Sign in at http://$(HOST):$(PORT)/signin with the demo owner above - Ctrl-C stops the server and its runner."
	exec $(VENV)/bin/fleetprompt serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check fleetprompt tests bench
	$(VENV)/bin/ruff format --check fleetprompt tests bench

test: $(VENV)/.installed-test lint
	$(PY) tests/support/postgres.py -- $(PY) -m pytest $(PYTEST_ARGS)

# The five benchmarks of bench/ on their own throwaway PostgreSQL; tables on stdout and in bench/results/latest.md.
bench: $(VENV)/.installed-test
	$(PY) tests/support/postgres.py -- $(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
