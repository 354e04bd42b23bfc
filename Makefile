# PercepNet Desktop. On a fresh Debian/Ubuntu machine: `make run` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench system-deps clean

# Missing Debian packages are installed (root or sudo) or the build stops with the command to run.
system-deps:
	@bash packaging/system-deps.sh $(PYTHON)

$(STAMP): pyproject.toml | system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $@

run: $(STAMP)
	$(PY) -m percepnet demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis bench-out demo-out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
