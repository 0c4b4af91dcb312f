# The two set-up commands of the README are `make run` and `make test`; both create .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
#: Debian's Chromium, driven by Playwright (the Python package) in the browser tests.
CHROMIUM := /usr/bin/chromium

#: The control-room page, built from web/ into the package (api/static/) with the locked npm packages.
WEB := api/static/index.html

.PHONY: run replay test unit lint bench sample clean web docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(WEB): web/package.json web/package-lock.json web/build.mjs $(wildcard web/src/*)
	cd web && npm ci --no-audit --no-fund && npm run build

web: $(WEB)

run: $(STAMP) $(WEB)
	$(BIN)/hotspots run --fences samples/fences.geojson

replay: $(STAMP)
	$(BIN)/hotspots replay --fences samples/fences.geojson --pings samples/pings.csv \
		--out var/sample-events.jsonl --dwell-out var/sample-dwell.csv --devices-out var/sample-devices.csv
	@echo "events: var/sample-events.jsonl  dwell: var/sample-dwell.csv  per device: var/sample-devices.csv"

# Playwright cannot download its own browser here; the tests use the system Chromium.
$(CHROMIUM):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium

test: $(STAMP) $(CHROMIUM) $(WEB)
	$(BIN)/pytest -q

#: The fast unit subset (no broker, PostgreSQL, subprocess or browser), on both cores.
unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration and not e2e" -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) $(CHROMIUM) $(WEB)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.control_room

sample: $(STAMP)
	$(BIN)/python scripts/make_sample.py

#: The generated parts of the docs: the settings table of deploy/README.md, from services/settings.py.
docs: $(STAMP)
	$(BIN)/python scripts/settings_table.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache api/static web/node_modules
