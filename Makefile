# DecisionGraph: `make up` runs the platform, `make test` runs the whole suite.
# Both create the virtualenv and install on first use; nothing else is needed by hand.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: up test chaos lint fmt schema bench screenshots install clean services-stop

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "DecisionGraph needs Python >= 3.11 (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml setup.py server/core/_native_projection.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/decisiongraph up

test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fault suite at length (15 s of ingest per fault); writes its table of figures into
# docs/operations.md. `make test` runs the same scenarios in their short form.
chaos: install
	DG_CHAOS_SECONDS=15 DG_CHAOS_REPORT=1 $(BIN)/python -m pytest tests/chaos -p no:cacheprovider -s

lint: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy
	$(BIN)/lint-imports

fmt: install
	$(BIN)/python -m ruff format .
	$(BIN)/python -m ruff check --fix .

schema: install
	$(BIN)/python -m server.graphql.export_schema > schema.graphql

bench: install
	$(BIN)/python -m bench

screenshots: install
	$(BIN)/python -m ui.screenshots

services-stop: install
	$(BIN)/decisiongraph services stop

clean:
	rm -rf $(VENV) .dg-test
