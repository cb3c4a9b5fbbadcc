# The two commands of the README: `make run` and `make test`. Both create .venv when missing
# and reinstall only when pyproject.toml changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data

.PHONY: run demo test bench lint train-default clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-ui: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[ui]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-ui

# Start the API and the web UI on the shipped model with a SQLite audit log in .data/
# (Ctrl-C stops both).
run: $(VENV)/.installed-ui
	$(BIN)/sepsis-api up

# Score the example ward list offline, without a server.
demo: $(VENV)/.installed
	$(BIN)/sepsis-api models show
	$(BIN)/sepsis-api predict --input examples/ward.csv --output .data/ward-scores.csv
	@cat .data/ward-scores.csv

test: $(VENV)/.installed-dev
	bash scripts/ensure-test-tools.sh
	$(BIN)/ruff check src tests benchmarks scripts docker
	$(BIN)/ruff format --check src tests benchmarks scripts docker
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_batch.py --data $(DATA)
	$(BIN)/python benchmarks/bench_http.py
	$(BIN)/python benchmarks/bench_monitoring.py
	$(BIN)/python benchmarks/bench_engines.py --data $(DATA)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks scripts docker
	$(BIN)/ruff format --check src tests benchmarks scripts docker
	$(BIN)/lint-imports
	$(BIN)/mypy

# Retrain the shipped default model from the data set (see README, "The shipped model").
train-default: $(VENV)/.installed-dev
	$(BIN)/sepsis-api train --data $(DATA)/Paitients_Files_Train.csv \
		--out src/sepsis_api/models --set-default

clean:
	rm -rf $(VENV) .data test-output .pytest_cache .ruff_cache
