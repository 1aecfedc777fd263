# okr_assets — the two commands: `make run` (set up + UI on embedded defaults) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OKR_HOME ?= $(CURDIR)/.okr
DAGSTER_PORT ?= 3000
export OKR_HOME
export DAGSTER_HOME := $(OKR_HOME)/dagster

.PHONY: run test demo install init-home system-deps lint clean-data mlflow-ui bench-model bench-drift bench

# System tools the test suite needs, as apt-package:command pairs; chromium is the browser the UI
# tests drive (Playwright's own browser download is not used), Java runs the local Spark session.
SYSTEM_DEPS := docker-compose:docker-compose chromium:chromium openjdk-17-jre-headless:java

# The venv is rebuilt whenever pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/.installed

## system-deps: install missing system tools with apt-get (as root); otherwise say what to install
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
	  command -v "$${dep#*:}" >/dev/null 2>&1 || missing="$$missing $${dep%%:*}"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "missing system packages:$$missing. Install them (Debian/Ubuntu: sudo apt-get install --no-install-recommends$$missing) and run make again." >&2; \
	  exit 1; \
	fi

## init-home: write the embedded Dagster instance config (SQLite) into $(DAGSTER_HOME) unless it has one
init-home: install
	$(BIN)/okr-assets init-home

## run: install, demo data into the landing folder, Tansu broker + trickle producer, UI + daemon on 127.0.0.1
run: install init-home
	$(BIN)/okr-assets generate --out $(OKR_HOME)/landing --bad-share 0.03
	@echo "Dagster UI: http://127.0.0.1:$(DAGSTER_PORT)  (the landing sensor lands the files within a minute)"
	exec $(BIN)/okr-assets dev --port $(DAGSTER_PORT)

## test: install if needed and run the whole test suite
test: install system-deps
	$(BIN)/ruff check okr_assets okr_assets_tests benchmarks
	$(BIN)/python -m pytest -n $${OKR_TEST_WORKERS:-2} --dist loadgroup --durations=20

## demo: the same pipeline headless, then a summary
demo: install init-home
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

## bench: the seven performance benchmarks (services started and stopped by each); one JSON line each
## on stdout, progress on stderr. Sizes: OKR_BENCH_* (see each module's docstring).
BENCHMARKS := kafka_ingest freshness batch_pipeline batch_scaling backfill sensor_tick code_load
bench: install
	@status=0; for b in $(BENCHMARKS); do $(BIN)/python -m benchmarks.$$b 2>>$${OKR_BENCH_LOG:-/dev/null} || \
	  { echo "benchmark $$b failed (see $${OKR_BENCH_LOG:-its stderr})" >&2; status=1; }; done; exit $$status

lint: install
	$(BIN)/ruff check okr_assets okr_assets_tests benchmarks

## clean-data: delete $(OKR_HOME) (warehouse, landing, Dagster runs)
clean-data:
	rm -rf $(OKR_HOME)
