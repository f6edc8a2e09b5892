# Two commands: `make demo` and `make test`. Both set everything up in .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
DURATION ?=
PYTEST_ARGS ?= --durations=25  # the slowest tests, to keep the suite within its budget

.PHONY: setup services demo test lint bench schemas clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: setup
	$(BIN)/flowgauge demo $(if $(DURATION),--duration $(DURATION))

test: setup services
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Programs some tests run (prometheus, promtool, amtool, kcat, chromium and its driver for
# the web view's browser tests): installed with apt-get when
# missing and running as root. Otherwise nothing fails here: those tests skip (or fail under
# FLOWGAUGE_REQUIRE_SERVICES=1, as in .ci/run).
SERVICE_PROGRAMS := prometheus promtool amtool kcat chromium chromedriver
SERVICE_PACKAGES := prometheus prometheus-alertmanager kcat chromium chromium-driver
services:
	@missing=$$(for p in $(SERVICE_PROGRAMS); do command -v $$p >/dev/null || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(SERVICE_PACKAGES) for:" $$missing; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends $(SERVICE_PACKAGES); } >/dev/null 2>&1 \
	      || echo "apt-get could not install them; the tests that need them skip"; \
	  else echo "missing" $$missing "(not root): the tests that need them skip"; fi; \
	fi

# The layer contracts (pyproject.toml, [tool.importlinter]), ruff and mypy.
lint: setup
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests
	$(BIN)/mypy

# BENCH_ARGS: e.g. --quick, or --only latency (see tests/bench.py)
bench: setup
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

schemas: setup
	$(BIN)/flowgauge schemas

clean:
	rm -rf $(VENV) .flowgauge .pytest_cache .mypy_cache .ruff_cache .hypothesis
