# Every target does its own set-up, idempotently: a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_PY  := $(VENV)/.installed
STAMP_NPM := node_modules/.installed

.PHONY: setup run test soak bench clean

setup: $(STAMP_PY) $(STAMP_NPM)

$(STAMP_PY): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## make run: serve function_app.py at http://localhost:7071 on Azurite (started if needed).
run: setup
	$(VENV)/bin/funcpy start --script-root .

## make test: the whole suite against real, in-memory Azurite instances on free ports.
test: setup
	$(PY) -m pytest -q -m "not soak" $(PYTEST_ARGS)

## make soak: the long crash and load tests.
soak: setup
	$(PY) -m pytest -q -m soak $(PYTEST_ARGS)

## make bench: throughput figures next to the raw Azurite rates of the same run.
bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules .pytest_cache .azurite
