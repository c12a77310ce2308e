# Two commands do everything on a fresh machine: `make export-tflite` and `make test`.
# Both create .venv from requirements.txt when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL ?= default
BENCHES ?= $(filter-out bench/common.py bench/charts.py bench/peers%,$(wildcard bench/*.py))
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv test lint bench bench-peers charts export-tflite firmware clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The test files run in TEST_WORKERS processes (pytest-xdist), a whole file per worker, so a file's
# module fixtures are built once; TEST_WORKERS=0 runs them all in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

lint: $(STAMP)
	$(BIN)/ruff check keras_onebit tests bench firmware

bench: $(STAMP)
	for b in $(BENCHES); do $(BIN)/python $$b || exit 1; done
	$(BIN)/python bench/charts.py

charts: $(STAMP)
	$(BIN)/python bench/charts.py

# The peers (larq, larq-compute-engine, tensorflow-cpu 2.15.1) live in their own environment,
# never in .venv; a failed install is logged and bench/peers.py reports its error.
PEER_PYTHON ?= python3.11
PEERS_VENV := bench/peers_env/.venv

$(PEERS_VENV)/.installed: bench/peers_env/requirements.txt
	rm -rf $(PEERS_VENV)
	( $(PEER_PYTHON) -m venv $(PEERS_VENV) && \
	  $(PEERS_VENV)/bin/python -m pip install -r bench/peers_env/requirements.txt && \
	  touch $@ ) > bench/peers_env/install.log 2>&1 || \
	  echo "the peers did not install: see bench/peers_env/install.log"

bench-peers: $(STAMP) $(PEERS_VENV)/.installed
	$(BIN)/python bench/peers.py

export-tflite: $(STAMP)
	$(BIN)/python -m keras_onebit export --model $(MODEL) --out export/

# Opt-in, outside `make test` and CI: the model's micro and int8 exports as Cortex-M4, Cortex-M4F / Cortex-M7
# firmware (reference and CMSIS-NN kernels), run under qemu-system-arm, with flash, RAM and
# instruction counts (docs/DEPLOY_MICRO.md, "Firmware"). TFLM_SRC: a tflite-micro checkout with its
# downloads in place. For the default model the report also goes to bench/results/firmware.json
# (another model's: FIRMWARE_ARGS="--results bench/results/firmware_<model id>.json").
# FIRMWARE_ARGS: more flags of firmware/run.py, e.g. --cores cortex-m4 --kernels cmsis_nn.
TFLM_SRC ?=
FIRMWARE_ARGS ?=
firmware: $(STAMP)
	$(BIN)/python firmware/run.py --tflm_src "$(TFLM_SRC)" --model $(MODEL) --out export \
	  $(if $(filter default,$(MODEL)),--results bench/results/firmware.json) $(FIRMWARE_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
