# The single entry point. `make test` and `make demo` are the README's two commands.
VENV ?= .venv
PY := $(VENV)/bin/python
STACK := ops/local/stack
DEBIAN_TOOLS := docker-compose:docker-compose prometheus:promtool

.PHONY: setup tools test lint typecheck demo backtest stack-up stack-down stack-status bench-kernel bench-e2e clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

setup: $(VENV)/.installed tools

# Tools some tests use (docker-compose validates docker-compose.yml, promtool tests the alerting rules);
# those tests skip, saying why, only where the tools cannot be installed.
tools:
	-@ops/local/install-tools $(DEBIAN_TOOLS)

lint: setup
	$(VENV)/bin/ruff check streamproc tests
	$(VENV)/bin/ruff format --check streamproc tests

typecheck: setup
	$(VENV)/bin/mypy

test: setup lint typecheck stack-up
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup stack-up
	$(VENV)/bin/streamproc demo

# Band vs calendar vs buy-and-hold on the bundled scenarios (20 seeds each): bench-results/backtest/
backtest: setup
	$(VENV)/bin/streamproc backtest

stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

bench-kernel: setup
	$(VENV)/bin/streamproc bench kernel

# The whole path on this machine (about 7 minutes): docs/performance.md explains the figures
bench-e2e: setup stack-up
	$(VENV)/bin/streamproc bench e2e

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
