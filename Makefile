# Two commands do everything on a fresh machine: `make export-tflite` and `make test`.
# Both create .venv from requirements.txt when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL ?= default
BENCHES ?= $(filter-out bench/common.py,$(wildcard bench/*.py))
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv test lint bench export-tflite clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check keras_onebit tests bench

bench: $(STAMP)
	for b in $(BENCHES); do $(BIN)/python $$b || exit 1; done

export-tflite: $(STAMP)
	$(BIN)/python -m keras_onebit export --model $(MODEL) --out export/

clean:
	rm -rf $(VENV) build *.egg-info
