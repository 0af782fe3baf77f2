# The two commands of the README: `make demo` and `make test`. `make dev` opens the Dagster UI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
# Bytecode: uv (or pip with --no-compile) installs without compiling (pip compiling every module it installed took
# ~25 s of a fresh install: google-ads' four API versions, pandas, hubspot..., most never imported), and what the
# pipeline, the CLI, the sandbox and a Google Ads run import is compiled once right after the install, into the usual
# __pycache__ folders, so a process started outside make with PYTHONDONTWRITEBYTECODE=1 reads it too. Inside make,
# Python writes the bytecode of anything else on first import, whatever the caller's PYTHONDONTWRITEBYTECODE says
# (folders ignored by git).
export PYTHONDONTWRITEBYTECODE :=
WARM_IMPORTS := import importlib, pipelines.definitions, pipelines.cli, pipelines.demo, sandbox.launcher; \
	from connectors.google_ads_transport import API_VERSION; \
	importlib.import_module(f"google.ads.googleads.{API_VERSION}.services.services.google_ads_service")

.PHONY: demo test dev chaos bench install install-dev lint clean

# The venv gets today's pip and uv from the caller's pip (`pip --python`, pip >= 22.3) instead of venv's bundled pip
# upgraded afterwards: ~3 s instead of ~13 s (ensurepip ~9 s, then the upgrade ~5 s), measured in a fresh clone.
# Without a usable pip outside, the bundled one is installed and upgraded, as before, and pip does the installs.
$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install --quiet pip uv 2>/dev/null \
		|| { $(BIN)/python -m ensurepip >/dev/null && $(BIN)/python -m pip install --quiet --upgrade pip; }

# The project's packages are installed by uv (Astral's installer, from PyPI, the makers of ruff): it downloads and
# unpacks in parallel. Measured in a fresh clone with an empty cache, the same 150 packages at the same versions
# (`pip freeze` compared): 6.6 s against pip's 24.6 s (18.5 CPU-s). uv reads no pip.conf: where it fails (a private
# index only pip knows, no uv in the venv), pip installs instead. Neither compiles bytecode at install (below).
define pip_install
{ [ -x $(BIN)/uv ] && $(BIN)/uv pip install --quiet --python $(BIN)/python -e '$(1)'; } \
	|| $(BIN)/python -m pip install --quiet --no-compile -e '$(1)'
endef

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(call pip_install,.)
	$(BIN)/python -c '$(WARM_IMPORTS)'
	touch $@

# One resolution for the package and its test tools (a second `pip install` after `-e .` re-resolved everything:
# ~6 s); it installs what `install` does too, so both are marked.
$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(call pip_install,.[dev])
	$(BIN)/python -c '$(WARM_IMPORTS); import pytest, xdist, playwright.sync_api'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The duckdb_write pool's slot is created up front: on a brand-new instance, runs racing to create it were
# seen to get one each (two writers at once), found by tests/test_concurrency.py.
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml $(VENV)/.installed
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@
	$(BIN)/dagster instance concurrency set duckdb_write 1 >/dev/null

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pipelines.demo

# Tests run in PYTEST_WORKERS processes (pytest-xdist), a test file per worker (a module's shared run is built once),
# the slowest files first (tests/conftest.py FILE_SECONDS, which also turns off xdist's own reordering of files by
# their number of tests, and names at the end of the run the files whose time has moved off the list). Three workers
# on two cores: the suite now waits as well as computes (servers, subprocesses, daemons, paced requests: its tests'
# seconds add up to ~537 against ~420 CPU-s), and a third worker fills those waits. Measured on a quiet machine in a
# fresh clone at e274efc, same tests, same CPU (~420 s): 2 workers 283 s, 3 workers 246 s. The slowest tests are
# listed at the end; the cases only the full battery runs (marked `full`) are skipped here (make chaos runs them).
PYTEST_WORKERS ?= 3

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15

# The reliability battery: every HTTP source through 20% 429, 5% 5xx, 2% resets, 2% stalls and 1% truncated
# bodies, 50 seeds; each run must give tables identical to a fault-free run (a short version is in make test).
# Every battery test (-m battery) runs; the battery writes its own results to docs/reliability.md.
chaos: install-dev
	MKPI_CHAOS_SEEDS=50 MKPI_CRASH_REPEATS=5 MKPI_RELIABILITY_REPORT=docs/reliability.md $(BIN)/python -m pytest -m battery -s

# The benchmark suite (issues #9, #21): every target beside its same-run baseline (bare DuckDB INSERT, dlt, the stock
# HubSpot models, the minimum request count, the latency bound); prints the table and writes docs/benchmarks.json
# and docs/benchmarks.md. Takes a while. Parts alone: .venv/bin/python -m bench.run_all --only load,kpi [--runs 1].
# The dev extra too: the demo benchmark's PostgreSQL instance is started as the tests start one (tests/postgres.py).
bench: install-dev
	$(call pip_install,.[bench])
	PYTHONPATH=$(CURDIR) $(BIN)/python -m bench.run_all

# The UI's partitions start where make demo's did (MKPI_START_DATE, unless set), so none shows as missing.
# dagster dev's webserver and daemon create runs (a launch, a schedule tick): they get Dagster's range bookkeeping
# switches from pipelines/lib/instance_env.py, the one place that sets them (docs/deployment.md).
dev: install $(DAGSTER_HOME)/dagster.yaml
	MKPI_START_DATE=$${MKPI_START_DATE:-$$($(BIN)/python -m pipelines.demo --print-start)} \
	$(BIN)/python -m pipelines.lib.instance_env $(BIN)/python -m sandbox --exec $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .dagster_home data
