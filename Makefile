# pmarket's everyday commands. `make run` and `make test` work on a fresh clone:
# they create the virtual environment (.venv) and install the project when needed, each
# step saying what it does and how long it took.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# PURE_PYTHON=1 (or PMARKET_PURE_PYTHON=1): do not compile the engine, run it interpreted
# (same behaviour, 2-3x slower). Otherwise a failed compile stops the build, saying why.
PURE_PYTHON ?= $(PMARKET_PURE_PYTHON)

# The engine core modules mypyc compiles: the one list is CORE in compiled.py.
ENGINE_CORE := $(shell $(PYTHON) pmarket/runtime/compiled.py)

.PHONY: run test lint bench build clean

# Run a command, then say how long it took.
TIMED = @sh -c 'start=$$(date +%s); echo "+ $$*"; "$$@" || exit $$?; \
	echo "==> done in $$(( $$(date +%s) - start )) s"' timed

$(VENV)/.installed: pyproject.toml
	@echo "==> step 1/3: creating the virtual environment $(VENV)"
	$(TIMED) $(PYTHON) -m venv $(VENV)
	$(TIMED) $(PY) -m pip install --upgrade pip
	@echo "==> step 2/3: installing pmarket and its dependencies into $(VENV) (pip)"
	$(TIMED) $(PY) -m pip install -e '.[dev]'
	@touch $@

# Compile the engine core in place with mypyc whenever one of its sources changed. A
# failed compile stops here, saying why and how to opt out (PURE_PYTHON=1); the engine
# never runs compiled code built from other sources than the current ones (compiled.py).
pmarket/engine/compiled.json: $(VENV)/.installed setup.py pmarket/runtime/compiled.py $(ENGINE_CORE)
	@echo "==> step 3/3: compiling the engine core with mypyc (1-2 min; PURE_PYTHON=1 skips it)"
	$(TIMED) $(PY) setup.py --quiet build_ext --inplace

ifneq ($(filter-out 0,$(PURE_PYTHON)),)
export PMARKET_PURE_PYTHON := 1
build: $(VENV)/.installed  ## PURE_PYTHON=1: the interpreted engine, on purpose
	@echo "==> step 3/3: not compiling the engine (PURE_PYTHON=1): pmarket runs the pure-Python engine, 2-3x slower"
else
build: pmarket/engine/compiled.json  ## compile the engine core (mypyc)
endif

run: build  ## run the exchange: pmarket serve at http://127.0.0.1:8000
	$(VENV)/bin/pmarket serve

# The suite runs in parallel (pytest-xdist): one worker more than the CPUs, because its
# tests spend about a third of their time waiting on servers and subprocesses they
# started; idle workers steal queued tests (--dist worksteal) so no long test is left
# for the end behind one worker. TEST_WORKERS=0 runs it in one process (for a debugger
# or -x), any number sets the workers.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))

test: build  ## the whole test suite, in parallel (services skip when absent)
	$(VENV)/bin/ruff check pmarket tests
	$(PY) -m pytest -q -n $(TEST_WORKERS) $(if $(filter 0,$(TEST_WORKERS)),,--dist worksteal)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check pmarket tests

bench: build
	$(VENV)/bin/pmarket bench engine

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
	rm -f pmarket/engine/*.so pmarket/engine/compiled.json
