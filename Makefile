# paycore — every target creates and uses .venv at the repo root.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml sdk/python/pyproject.toml | sha1sum | cut -c1-10)

.PHONY: install run test test-fast bench loadtest peak openapi clean

$(STAMP): pyproject.toml sdk/python/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[embedded,test,load]'
	$(PY) -m pip install -q --disable-pip-version-check -e sdk/python   # the Python SDK, tested in tests/sdk
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## the whole platform on embedded defaults: private Postgres, broker, 12 simulators, demo merchant
run: install
	$(PY) -m devstack

## every test, against real Postgres, the real broker and the simulators
test: install
	$(PY) -m pytest -q -p no:cacheprovider

## benchmark: prints one JSON line per scenario (never asserts timings)
bench: install
	$(PY) -m loadtest.bench

## the locust load test, headless (see loadtest/README.md)
loadtest: install
	$(PY) -m loadtest.run

## the festival peak check: 5,000 payments/s of the locust mix for 5 min on a 16+ core machine;
## `make peak SCALE=0.1` runs it at a tenth of the rate (loadtest/peak.py)
SCALE    ?= 1.0
DURATION ?= 300
peak: install
	$(PY) -m loadtest.peak --scale $(SCALE) --duration $(DURATION)

openapi: install
	$(PY) -m devstack.openapi --write

clean:
	rm -rf var test-output .pytest_cache sdk/java/target
