#!/usr/bin/env bash
# The GPU checks of issue 22, in one run of under 8 minutes (on the device machine: bash bench/device.sh).
#   1. bf16 train step vs the floor, and 2. the attention kernel used with / without a prompt
#      (bench/device_checks.py -> $OUT/device-checks.json);
#   3. device_map over two GPUs where two exist (tests/core/test_sharded.py);
#   4. the serving benchmark's engine section on the GPU (bench/serve.py --sections mixed; needs SmolLM2's
#      weights through softprompt.assets, skipped with a note where they are absent).
# Results go to $OUT (default bench/results/device); copy them into bench/results/ and the README by hand.
# Never run on CPU: without CUDA it stops before measuring anything.
set -u
OUT="${OUT:-bench/results/device}"
PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "no nvidia-smi"
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count(), 'transformers', transformers.__version__)"
} | tee "$OUT/environment.txt"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "no CUDA GPU: nothing measured"; exit 2; }

status=0
echo "== 1-2: bf16 step vs floor; attention kernels"
timeout 300 "$PY" bench/device_checks.py "$OUT" 2>&1 | tee "$OUT/device-checks.log" || status=1

echo "== 3: device_map over two GPUs"
if [ "$("$PY" -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  timeout 120 "$PY" -m pytest tests/core/test_sharded.py -q -p no:cacheprovider 2>&1 | tee "$OUT/sharded.log" || status=1
else
  echo "one GPU: the two-GPU device_map test does not apply (not run)" | tee "$OUT/sharded.log"
fi

echo "== 4: serving engine on the GPU (mixed-prompt batch vs single-prompt batch)"
if "$PY" -c "from softprompt.assets import resolve_model; resolve_model('smollm2-135m')" >/dev/null 2>&1; then
  timeout 120 "$PY" bench/serve.py --quick --sections mixed --out "$OUT/serve-mixed.json" 2>&1 | tee "$OUT/serve.log" || status=1
else
  echo "SmolLM2 weights not installed here: serving benchmark not run" | tee "$OUT/serve.log"
fi
exit $status
