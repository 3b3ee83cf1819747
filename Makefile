# Two commands for a new user: `make run` and `make test`. `make ui` for the Dagster UI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The Dagster instance lives in this project (dagster.yaml here, state under .dagster/); another one can be
# given on the command line: make ui DAGSTER_HOME=/path/to/instance
export DAGSTER_HOME := $(CURDIR)
# Port of the Dagster UI: make ui UI_PORT=3001
UI_PORT ?= 3000

.PHONY: run test ui lint status clean sample-data

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: materialise every asset over data/ with the embedded defaults, then print a summary
run: $(VENV)/.installed
	$(BIN)/dagster asset materialize -m bioimage_pipeline.definitions --select '*'
	$(BIN)/bioimage-pipeline status

## test: lint, type-check and run the whole test suite (installs Debian's chromium for the UI test if missing)
test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	sh scripts/ensure-chromium
	$(BIN)/pytest

## ui: Dagster webserver and daemon on 127.0.0.1:$(UI_PORT) (3000), both sensors running; Ctrl-C stops both
ui: $(VENV)/.installed
	$(BIN)/python scripts/ui.py --host 127.0.0.1 --port $(UI_PORT)

status: $(VENV)/.installed
	$(BIN)/bioimage-pipeline status

## sample-data: regenerate the synthetic stores and profiles under data/ (committed)
sample-data: $(VENV)/.installed
	$(BIN)/python scripts/make_sample_data.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## clean: remove outputs written under data/ and the Dagster instance state
clean:
	rm -rf data/catalog data/warehouse data/.warehouse.versions .dagster
