# gridmap — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint install demo-build bench bench-layers bench-register bench-routing bench-dashboard bench-load bench-routing-weekly bench-city bench-summary clean help

help:
	@echo "make demo   build the embedded demo database (real layers + synthetic data), serve the dashboard, simulate stewards recording visits"
	@echo "make test   run the test suite (PostGIS tests skip when no server is reachable)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gridmap demo --simulate

demo-build: $(STAMP)
	$(BIN)/gridmap demo --no-serve

# `make test`: the quick suite (slow and browser tests left out) on 2 processes (pytest-xdist).
# `make test-all`: everything on both backends, as CI runs it. `make lint`: ruff, import contracts, mypy.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadscope -m "not slow and not browser"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadscope --durations=25

lint: $(STAMP)
	$(BIN)/ruff check gridmap tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy gridmap/domain gridmap/routing/problem.py gridmap/rules/facts.py

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $(BENCH_STAMP)

bench-layers: $(STAMP)
	$(BIN)/python bench/layers.py

bench-register: $(STAMP)
	$(BIN)/python bench/register.py

bench-routing: $(BENCH_STAMP)
	$(BIN)/python bench/routing.py

bench-dashboard: $(STAMP)
	$(BIN)/python bench/dashboard.py

bench-load: $(BENCH_STAMP)
	$(BIN)/python bench/load.py

bench-routing-weekly: $(STAMP)
	$(BIN)/python bench/routing_weekly.py

bench-city: $(STAMP)
	$(BIN)/python bench/city.py

bench-summary: $(STAMP)
	$(BIN)/python bench/summary.py

bench: bench-layers bench-register bench-routing bench-routing-weekly bench-dashboard bench-load bench-city
	$(MAKE) bench-summary

clean:
	rm -rf var/ .pytest_cache
