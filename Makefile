# The two commands of the README: `make demo` and `make test`. Both create .venv when absent.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned so pip takes the CPU build on local disk (an unpinned torch pulls a multi-GB CUDA build).
TORCH := torch==2.13.0

.PHONY: test lint format demo install bench bench-quality bench-serve bench-quantize clean

# constraints.txt pins the exact set the suite passed on; pyproject.toml keeps ranges.
$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt $(TORCH) -e '.[test,assets,ray,quantize]'
	touch $@

install: $(BIN)/.installed

test: $(BIN)/.installed
	$(BIN)/python -m pytest tests

# ruff: format + lint (configured in pyproject.toml); .ci/run runs `make lint` before the tests
lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(BIN)/.installed
	$(BIN)/python -m softprompt demo

# Side-by-side speed/memory against PEFT (minutes): writes bench/results/train.json
bench: $(BIN)/.installed
	$(BIN)/python bench/train.py

# Quality over 3 seeds on the built-in datasets (many hours on 2 cores; resumes run by run): writes bench/results/quality.{json,md,png}
# Run it in the background: nohup make bench-quality > bench/results/quality.log 2>&1 &
bench-quality: $(BIN)/.installed
	$(BIN)/python bench/quality.py --preset standard

# Serving on SmolLM2-135M vs. PEFT (throughput, latency, mixed-batch overhead, HTTP TTFT): writes bench/results/serve.json
# Run it in the background: nohup make bench-serve > bench/results/serve.log 2>&1 &
bench-serve: $(BIN)/.installed
	$(BIN)/python bench/serve.py

# Quantized backbones (int8 / nf4 through bitsandbytes) vs bfloat16 / float32 on SmolLM2-135M: peak memory of a
# training step and of inference, and the demo's prompt-tuning run (48 steps x 8) scored on 200 test reviews.
# Writes bench/results/quantize.{json,md}. Run it in the background:
# nohup make bench-quantize > bench/results/quantize.log 2>&1 &
bench-quantize: $(BIN)/.installed
	$(BIN)/python bench/quantize.py

clean:
	rm -rf $(VENV) build *.egg-info
