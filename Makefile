# Two entry points, each working on a fresh machine with nothing but Python:
#   make demo   create .venv, install, run `python -m fp8gemm demo`
#   make test   create .venv, install, run ruff and the CPU test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fp8gemm-installed

.PHONY: demo test install clean

demo: $(STAMP)
	$(PY) -m fp8gemm demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not gpu"

install: $(STAMP)

# torch first, pinned to the CPU build that lies on disk: with it installed, the unpinned `torch`
# dependency of the package is already satisfied and pip never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
