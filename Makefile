# Newcomer commands: `make demo` and `make test`. Everything goes through .venv.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.setup-stamp
export WANDB_MODE ?= offline
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup lint format test test-fast demo bench clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/ —/'

setup: $(STAMP)  ## create .venv with the pinned CPU stack (idempotent, fast when done)

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	@touch $@

lint: setup  ## ruff lint + format check, hadolint on the Dockerfile
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@if [ -f Dockerfile ]; then $(VENV)/bin/hadolint Dockerfile; fi

format: setup  ## apply ruff format and autofixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup lint  ## set-up + lint + the whole test suite (slow tests included)
	$(PY) -m pytest -q

test-fast: setup  ## the test suite without slow tests
	$(PY) -m pytest -q -m "not slow"

demo: setup  ## set-up + normals of an embedded demo scan (outputs/demo/), scored vs Open3D PCA
	$(PY) predict.py --demo

bench: setup  ## the benchmark scripts (print ratios against side-by-side baselines)
	$(PY) scripts/bench_layers.py

clean:  ## remove caches and outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache outputs logs multirun
