# Every target does its own set-up, idempotently: a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_PY  := $(VENV)/.installed
STAMP_NPM := node_modules/.installed

CHROMIUM  ?= /usr/bin/chromium

.PHONY: setup browser run test soak bench clean

# make run needs no browser; make test adds it (see browser).
setup: $(STAMP_PY) $(STAMP_NPM)

## make browser: Debian's chromium for the dashboard's browser tests (Playwright cannot download its own here).
browser:
	@test -x $(CHROMIUM) || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium for the dashboard's browser tests..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "The dashboard's browser tests need chromium at $(CHROMIUM): install it as root with" \
		"'apt-get update && apt-get install -y chromium', or set CHROMIUM=/path (and DASHBOARD_TEST_CHROMIUM)." >&2; exit 1; fi; }
	@test -x $(CHROMIUM) || { echo "chromium is still missing at $(CHROMIUM) after apt-get install." >&2; exit 1; }

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

## make test: the whole suite against real, in-memory Azurite instances on free ports, on TEST_WORKERS
## pytest-xdist workers (each its own Azurite; units of work are modules: tests/conftest.py). Bytecode is
## cached even where PYTHONDONTWRITEBYTECODE is set: the suite starts hundreds of Python processes (CLI,
## hosts, workers) that would otherwise compile the project's modules again each time.
TEST_WORKERS ?= 3
test: setup browser
	env -u PYTHONDONTWRITEBYTECODE DASHBOARD_TEST_CHROMIUM=$(CHROMIUM) \
		$(PY) -m pytest -q -m "not soak" -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

## make soak: the long crash and load tests.
soak: setup
	$(PY) -m pytest -q -m soak $(PYTEST_ARGS)

## make bench: throughput figures next to the raw Azurite rates of the same run.
bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules .pytest_cache .azurite
