# The two Quick start commands (`make demo`, `make test`) and the chores around them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

# The main job on the embedded default: no server to start, nothing to configure.
demo: $(VENV)/.installed
	BIN=$(BIN) bash examples/demo.sh

test: lint
	$(BIN)/pytest

# Everything but the interop group (ClearML's own tools; a few minutes): for quick local runs.
test-fast: lint
	$(BIN)/pytest -m "not interop"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python bench/server.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
