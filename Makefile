# Two commands for a fresh machine: `make demo` (set up + train, evaluate, predict) and `make test`.
# Both create .venv if needed and install the CPU build of torch first, so nothing pulls the CUDA build.

VENV      ?= .venv
PYTHON    ?= python3
TORCH     ?= torch==2.13.0
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# on machines whose pip has no local CPU wheel.
TORCH_PIP_ARGS ?=
# The full datasets (make demo, bench/); the tests use the samples in tests/data instead.
DATA_DIR  ?= $(abspath ../shared/data)
BIN       := $(VENV)/bin
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup tensorflow ray demo test test-fast test-tensorflow lint docs clean chromium postgres

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,keras,tracking]"
	touch $@

# SST-2 from DATA_DIR, else from the Hub, else the sample in tests/data (examples/demo_data.py says which).
demo: setup
	$(BIN)/finetext train examples/demo.yaml $$($(BIN)/python examples/demo_data.py $(DATA_DIR)) --overwrite-output-dir
	$(BIN)/finetext predict outputs/demo "a gripping, beautifully acted film" "a dull and lifeless mess"

# The keras engine's tensorflow backend (TensorFlow, keras-hub: about 2.2 GB, 25 s to install); make test needs it.
tensorflow: $(VENV)/.tensorflow

$(VENV)/.tensorflow: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[tensorflow]"
	touch $@

# Ray Data (about 250 MB): tests/test_ray_predict.py runs examples/ray_predict.py on a local Ray instance.
ray: $(VENV)/.ray

$(VENV)/.ray: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[ray]"
	touch $@

# Every test (CI runs this); the tests use the samples in tests/data, nothing beside the checkout.
test: setup tensorflow ray chromium postgres
	$(BIN)/ruff check src tests bench examples
	$(BIN)/python -m pytest

# The tests not marked slow (each under 10 s): about a minute.
test-fast: setup chromium postgres
	$(BIN)/ruff check src tests bench examples
	$(BIN)/python -m pytest -m "not slow"

# tests/test_report.py opens the report in Debian's chromium: installed here when missing (root with apt-get);
# without it the test skips its browser check, except under CI where it fails.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq >/dev/null 2>&1 \
		&& apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; } \
		|| echo "chromium could not be installed (needs root and apt-get): tests/test_report.py skips its browser check"

# The shared-storage tests start a throwaway server from Debian's postgresql (tests/postgres_server.py): installed
# here when missing (root with apt-get); without it they skip, except under CI where they fail.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq >/dev/null 2>&1 \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; } \
		|| echo "postgresql could not be installed (needs root and apt-get): the shared-storage tests skip"

# Only the keras engine's tests, both backends.
test-tensorflow: setup tensorflow
	$(BIN)/python -m pytest tests/test_keras_engine.py tests/test_keras_tensorflow.py

docs: setup
	$(BIN)/finetext config --docs > docs/config.md

clean:
	rm -rf outputs .pytest_cache .ruff_cache
