# Two commands: `make demo` and `make test`. Both set everything up in .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
DURATION ?=
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench schemas clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: setup
	$(BIN)/flowgauge demo $(if $(DURATION),--duration $(DURATION))

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m tests.bench

schemas: setup
	$(BIN)/flowgauge schemas

clean:
	rm -rf $(VENV) .flowgauge .pytest_cache .mypy_cache .ruff_cache .hypothesis
