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

BENCH_STAMP := $(VENV)/.bench-stamp

$(STAMP): pyproject.toml | system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,train]'
	@touch $@

# The peer denoisers (RNNoise, DeepFilterNet3, Speex) are only needed by the benchmarks.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	@touch $@

run: $(STAMP)
	$(PY) -m percepnet demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis bench-out demo-out
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
