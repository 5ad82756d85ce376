# Two commands: `make run` and `make test`. Both set up .venv on their own.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint typecheck layers pytest clean venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	LOG_FORMAT=$${LOG_FORMAT:-console} $(BIN)/cronicorn up

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy src

pytest: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The dependency rules of docs/architecture.md (.importlinter); fails on a violation.
layers: $(STAMP)
	$(BIN)/lint-imports --no-cache

test: lint typecheck layers pytest

# The tests' embedded PostgreSQL (tests/conftest.py): stopped first, then removed with its cache.
TEST_HOME = /tmp/cronicorn-tests-$(shell id -u)-$(shell printf '%s' '$(realpath $(CURDIR))' | sha1sum | cut -c1-8)

clean:
	@if [ -d $(TEST_HOME)/pgdata ] && [ -x $(BIN)/python ]; then \
	  $(BIN)/python -c 'import pathlib, sys; from cronicorn.embedded import EmbeddedPostgres; EmbeddedPostgres(pathlib.Path(sys.argv[1])).stop(force=True)' $(TEST_HOME); fi
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(TEST_HOME) /tmp/cronicorn-tests-$(shell id -u)-external.lock
