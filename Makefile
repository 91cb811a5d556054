# mlcycle: the two commands a newcomer needs are `make demo` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Subprocesses (mlflow run's `python -m pipelines`, servers started by tests) use the venv too.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup demo test test-fast lint format settings-doc ui serve clean

$(BIN)/mlcycle: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip > $(VENV)/pip.log 2>&1
	$(BIN)/pip install -q -e ".[dev]" >> $(VENV)/pip.log 2>&1 || { tail -30 $(VENV)/pip.log; exit 1; }
	@touch $(BIN)/mlcycle

setup: $(BIN)/mlcycle  ## venv + the project with its dev extras

demo: setup  ## train, register, promote, serve, simulate traffic, run drift (embedded default)
	$(BIN)/mlcycle demo

# Two parts: everything but the `serial` tests on two xdist workers, then the `serial` ones
# (a server timed under load, a fault or a deadline) alone; both run, and either failing fails.
test: setup lint  ## every test: unit, integration, model, e2e (slow and browser ones included)
	@status=0; \
	$(BIN)/pytest -p no:cacheprovider -n 2 -m "not serial" --durations=30 tests || status=1; \
	$(BIN)/pytest -p no:cacheprovider -m serial --durations=15 tests || status=1; \
	exit $$status

test-fast: setup  ## unit tests only
	$(BIN)/pytest -p no:cacheprovider tests/unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

settings-doc: setup  ## regenerate docs/settings.md's tables from the settings classes
	$(BIN)/python -m mlcycle.settings_doc

ui: setup  ## the MLflow UI on the embedded store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --port 5000

serve: setup
	$(BIN)/mlcycle serve

clean:
	rm -rf .mlcycle mlruns mlflow.db test-artifacts
