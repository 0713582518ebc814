# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test test-sqlite test-postgresql lint bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(VENV)/.installed $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $(VENV)/.installed $(VENV)/.installed-test $@

serve: $(VENV)/.installed
	$(BIN)/fediverse-stories init
	exec $(BIN)/fediverse-stories serve --host 127.0.0.1 --port 8000

# The whole suite on SQLite, then again on PostgreSQL when FEDIVERSE_STORIES_TEST_DATABASE_URL is set.
test: $(VENV)/.installed-test interop-venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(MAKE) --no-print-directory test-sqlite
	@if [ -n "$$FEDIVERSE_STORIES_TEST_DATABASE_URL" ]; then \
		$(MAKE) --no-print-directory test-postgresql; \
	else \
		echo "FEDIVERSE_STORIES_TEST_DATABASE_URL is not set: the PostgreSQL run is skipped"; \
	fi

test-sqlite: $(VENV)/.installed-test
	@echo "=== the suite on SQLite ==="
	FEDIVERSE_STORIES_TEST_BACKEND=sqlite $(BIN)/pytest $(PYTEST_ARGS)

test-postgresql: $(VENV)/.installed-test
	@echo "=== the suite on PostgreSQL ==="
	FEDIVERSE_STORIES_TEST_BACKEND=postgresql $(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.installed-bench interop-venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The interop suite's peers (bovine-herd, bovine-tool, fediverse-pasture and its 262 inputs) in a
# virtual environment of their own; tests/interop runs them in a network namespace (root).
INTEROP_VENV := .venv-interop

.PHONY: interop-venv interop
interop-venv: $(INTEROP_VENV)/.installed

$(INTEROP_VENV)/.installed: tests/interop/peers/requirements.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/interop/peers/requirements.txt
	touch $@

# Only the interop suite (the whole suite collects it too, in its SQLite pass).
interop: $(VENV)/.installed-test $(INTEROP_VENV)/.installed
	FEDIVERSE_STORIES_TEST_BACKEND=sqlite $(BIN)/pytest tests/interop $(PYTEST_ARGS)
