# pmarket's everyday commands. `make run` and `make test` work on a fresh clone:
# they create the virtual environment (.venv) and install the project when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

# The engine core modules mypyc compiles (see setup.py and pmarket/engine/compiled.py).
ENGINE_CORE := $(addprefix pmarket/engine/,limits.py units.py events.py book.py ledger.py engine.py \
	trading.py collateral.py admin.py queries.py snapshot.py compiled.py)

.PHONY: run test lint bench build clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Compile the engine core in place with mypyc whenever one of its sources changed. A
# failed compile leaves the pure-Python engine (setup.py says why), and the engine never
# runs compiled code built from other sources than the current ones (compiled.py).
pmarket/engine/compiled.json: $(VENV)/.installed setup.py $(ENGINE_CORE)
	$(PY) setup.py --quiet build_ext --inplace

build: pmarket/engine/compiled.json  ## compile the engine core (mypyc)

run: build  ## run the exchange: pmarket serve at http://127.0.0.1:8000
	$(VENV)/bin/pmarket serve

# The suite runs in parallel, one worker per CPU (pytest-xdist); TEST_WORKERS=0 runs it in
# one process (for a debugger or -x), any number sets the workers.
TEST_WORKERS ?= auto

test: build  ## the whole test suite, in parallel (services skip when absent)
	$(VENV)/bin/ruff check pmarket tests
	$(PY) -m pytest -q -n $(TEST_WORKERS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check pmarket tests

bench: build
	$(VENV)/bin/pmarket bench engine

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
	rm -f pmarket/engine/*.so pmarket/engine/compiled.json
