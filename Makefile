# Two commands: `make run` and `make test`. Both set up .venv on their own.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint typecheck layers pytest clean venv

# uv installs the same packages from PyPI in about a quarter of pip's time (32 s against
# 127 s for a fresh venv here); pip is the fallback where uv cannot be had or fails.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv && \
	  $(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -e '.[dev]' || \
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

# The static checks (mypy alone takes ~45 s of CPU on a fresh clone) run beside the tests,
# which leave a core idle a third of the time; their output follows the tests'.
test: $(STAMP)
	@$(MAKE) --no-print-directory -k lint typecheck layers > $(VENV)/checks.log 2>&1 & checks=$$!; \
	$(MAKE) --no-print-directory pytest; tests=$$?; \
	wait $$checks; checked=$$?; cat $(VENV)/checks.log; \
	if [ $$checked -ne 0 ]; then echo "make test: lint, typecheck or layers failed (above)"; fi; \
	test $$tests -eq 0 && test $$checked -eq 0

# The tests' embedded PostgreSQL (tests/conftest.py): stopped first, then removed with its cache.
TEST_HOME = /tmp/cronicorn-tests-$(shell id -u)-$(shell printf '%s' '$(realpath $(CURDIR))' | sha1sum | cut -c1-8)

clean:
	@if [ -d $(TEST_HOME)/pgdata ] && [ -x $(BIN)/python ]; then \
	  $(BIN)/python -c 'import pathlib, sys; from cronicorn.embedded import EmbeddedPostgres; EmbeddedPostgres(pathlib.Path(sys.argv[1])).stop(force=True)' $(TEST_HOME); fi
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(TEST_HOME) /tmp/cronicorn-tests-$(shell id -u)-external.lock
