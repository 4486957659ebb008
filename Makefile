# One command everywhere: `make run` starts the service, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run demo poll test lint typecheck unit eval eval-check bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock
	$(BIN)/pip install -q -r requirements-dev.lock
	touch $@

run: $(VENV)/.runtime  ## install and start the service on the embedded defaults
	$(BIN)/monitor run

demo: $(VENV)/.runtime  ## install and run the offline demo (bundled feeds, temporary database, web page)
	$(BIN)/monitor demo

poll: $(VENV)/.runtime  ## install and poll every feed once
	$(BIN)/monitor poll --once

lint: $(VENV)/.dev
	$(BIN)/ruff check monitor tests bench

typecheck: $(VENV)/.dev
	$(BIN)/mypy monitor

unit: $(VENV)/.dev
	$(BIN)/python -m pytest -q

test: lint typecheck unit  ## install and run every check and test

EVAL_CORPORA := $(foreach f,eval/dev/docs.jsonl $(wildcard eval/docs/*.jsonl),--corpus $(f))

eval: $(VENV)/.runtime  ## score the shipped rules on the whole labelled set (dev, tune and check), per language
	$(BIN)/monitor rules eval $(EVAL_CORPORA) --labels eval/dev/labels.jsonl --labels eval/tune/labels.jsonl \
	  --labels eval/check/labels.jsonl --by lang

eval-check: $(VENV)/.runtime  ## the acceptance gate: the check split, P >= 0.95 and R >= 0.90 per rule and language
	$(BIN)/monitor rules eval $(EVAL_CORPORA) --labels eval/check/labels.jsonl --by lang \
	  --min-precision 0.95 --min-recall 0.90

lock: $(BIN)/python  ## regenerate the lock files from pyproject.toml in a scratch venv
	rm -rf /tmp/monitor-lock && $(PYTHON) -m venv /tmp/monitor-lock
	/tmp/monitor-lock/bin/pip install -q . && /tmp/monitor-lock/bin/pip freeze --exclude monitor > requirements.lock.new
	/tmp/monitor-lock/bin/pip install -q ".[dev]" && /tmp/monitor-lock/bin/pip freeze --exclude monitor > requirements-dev.lock.new
	@echo "review and move requirements*.lock.new into place"

bench: $(VENV)/.dev  ## benchmarks (see docs/performance.md for corpus paths)
	$(BIN)/python bench/pipeline_throughput.py --corpus ../shared/corpus

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
