# okr_assets — the two commands: `make run` (set up + UI on embedded defaults) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OKR_HOME ?= $(CURDIR)/.okr
DAGSTER_PORT ?= 3000
export OKR_HOME
export DAGSTER_HOME := $(OKR_HOME)/dagster

.PHONY: run test demo install lint clean-data mlflow-ui bench-model bench-drift

# The venv is rebuilt whenever pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## run: install, demo data into the landing folder, Tansu broker + trickle producer, UI + daemon on 127.0.0.1
run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/okr-assets generate --out $(OKR_HOME)/landing --bad-share 0.03
	@echo "Dagster UI: http://127.0.0.1:$(DAGSTER_PORT)  (the landing sensor lands the files within a minute)"
	exec $(BIN)/okr-assets dev --port $(DAGSTER_PORT)

## test: install if needed and run the whole test suite
test: install
	$(BIN)/ruff check okr_assets okr_assets_tests benchmarks
	$(BIN)/python -m pytest

## demo: the same pipeline headless, then a summary
demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/okr-assets demo

## mlflow-ui: the MLflow UI on the embedded tracking store (http://127.0.0.1:5000)
mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(OKR_HOME)/mlflow.db --host 127.0.0.1 --port $${MLFLOW_PORT:-5000}

## bench-model: model quality against the Bayes-optimal and oracle predictors (one JSON line)
bench-model: install
	$(BIN)/python -m benchmarks.model_quality

## bench-drift: drift detector false-alarm and detection rates (one JSON line)
bench-drift: install
	$(BIN)/python -m benchmarks.drift_quality

lint: install
	$(BIN)/ruff check okr_assets okr_assets_tests benchmarks

## clean-data: delete $(OKR_HOME) (warehouse, landing, Dagster runs)
clean-data:
	rm -rf $(OKR_HOME)
