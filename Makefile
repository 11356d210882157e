# nasviz: `make test` and `make lab` are the two commands a new user needs.
# Each creates .venv when missing and installs through constraints.txt (torch first, CPU build).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.nasviz-installed
EXTRAS := dev,hf,distributed,lab,deploy,datasets
PORT   ?= 8888
# notebooks' kernels and console scripts come from the venv
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: test test-gpu lab bench lint format clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# the tests marked gpu (deselected by `make test`): run them on a machine with CUDA
test-gpu: $(STAMP)
	$(PY) -m pytest -m gpu --gpu $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check nasviz tests bench
	$(VENV)/bin/ruff format --check nasviz tests bench

format: $(STAMP)
	$(VENV)/bin/ruff format nasviz tests bench
	$(VENV)/bin/ruff check --fix nasviz tests bench

# the documentation site (build/site): the API reference from the docstrings, guide pages from
# README.md's sections, the notebooks executed (cached in build/docs) and rendered; warnings are
# errors. Its tools (the docs extra) are installed with everything else.
EXTRAS := $(EXTRAS),docs
.PHONY: docs
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) build dist .pytest_cache
