# pmarket's everyday commands. `make run` and `make test` work on a fresh clone:
# they create the virtual environment (.venv) and install the project when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed  ## run the exchange
	$(VENV)/bin/pmarket bench engine --quick

test: $(VENV)/.installed  ## the whole test suite (services skip when absent)
	$(VENV)/bin/ruff check pmarket tests
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check pmarket tests

bench: $(VENV)/.installed
	$(VENV)/bin/pmarket bench engine

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
