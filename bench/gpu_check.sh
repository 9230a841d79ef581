#!/usr/bin/env bash
# The CCE kernel's first GPU run, in one device call, within 8 minutes:
#
#   run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# .whl/ (ignored by git) carries the optional peers, pure-Python wheels, fetched here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 -d .whl \
#     cut-cross-entropy==25.1.1 liger-kernel==0.8.5
# (without them the peers' rows read "not installed"). The machine has torch 2.11,
# Triton 3.6, numpy 2.5, pytest with xdist and timeout, and no network.
#
# Steps, each its own process under `timeout`, each one's output under $OUT as it ends
# (8 files): 0 environment, versions, sm_90a resources (log.txt); 1 bf16 smoke test of
# every mode against fp32 (smoke.json); 2 the headline shape, tuned, every method
# (cce.md, bench.log); 3 the GPU tests (junit.xml, pytest.log); 4 what time is left:
# the headline shape with shuffled vocabulary ids (cce_shuffled.md), then shapes 3 and 2
# untuned without torch.compile (cce_rest.md). A global deadline (GPU_CHECK_BUDGET,
# 470 s) caps every step, so the call ends in time whatever hangs.
set -u -o pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
exec 3>&1  # the call's own output: step statuses, whatever the steps' redirections
BUDGET=${GPU_CHECK_BUDGET:-470}
START=$SECONDS

# step NAME LIMIT COMMAND...: run under min(LIMIT, time left); its status goes to log.txt.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - (SECONDS - START)))
  local t=$((limit < left ? limit : left))
  if [ "$t" -lt 20 ]; then
    note "== $name: skipped, ${left}s left"
    return 0
  fi
  note "== $name (timeout ${t}s, at $((SECONDS - START))s)"
  local t0=$SECONDS
  timeout -k 10 "$t" "$@"
  local rc=$?
  note "== $name: exit $rc after $((SECONDS - t0))s"
}

note() { echo "$1" >>"$LOG"; echo "$1" >&3; }

{
  echo "== environment"
  nvidia-smi 2>&1 | head -20
  python3 -c "import sys, torch, triton, numpy; print(sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name())"
  python3 -m pip list 2>/dev/null | grep -iE "^(torch|triton|numpy|pytest|pytest-xdist|pytest-timeout|cut|liger) " || true
} >>"$LOG" 2>&1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >>"$LOG" 2>&1 && export PYTHONPATH=/tmp/site
fi
python3 -c "import cut_cross_entropy, liger_kernel; print('peers importable')" >>"$LOG" 2>&1
step "sm_90a resources" 30 python3 -m trainers.cce.codegen_check >>"$LOG" 2>&1

# 1. Smoke: bf16 (4096, 2304, 32000), every mode against an fp32 reference.
step "smoke" 90 python3 bench/gpu_smoke.py --out "$OUT/smoke.json" >>"$LOG" 2>&1

# 2. The headline shape, tuned, every method in its own process.
step "headline" 150 python3 bench/cce_bench.py --shapes 8192x2304x256000 --cases ordered \
  --reps 10 --warmup 3 --method-timeout 80 --tune-timeout 90 --out "$OUT/cce.md" --verbose \
  2>&1 | tee -a "$OUT/bench.log" | tail -3 >>"$LOG"

# 3. The tests that run kernels on the GPU (the CPU-only modules tell nothing here).
T=tests/trainers/cce
step "tests" 150 python3 -m pytest -q -p no:cacheprovider -n 8 --timeout 140 \
  "$T/test_triton_path.py" "$T/test_filtering.py" "$T/test_compile.py" \
  "$T/test_vocab_order.py" "$T/test_weight_grad.py" --junitxml="$OUT/junit.xml" \
  2>&1 | tee "$OUT/pytest.log" | tail -3 >>"$LOG"

# 4. With what is left: shuffled vocabulary ids, then the other shapes.
step "shuffled" 70 python3 bench/cce_bench.py --shapes 8192x2304x256000 --cases shuffled \
  --no-tune --reps 5 --warmup 2 --method-timeout 40 --out "$OUT/cce_shuffled.md" \
  2>&1 | tee -a "$OUT/bench.log" | tail -3 >>"$LOG"
step "other shapes" 150 python3 bench/cce_bench.py \
  --shapes 16384x768x50304,8192x4096x128256 --cases ordered --no-tune --no-compile \
  --reps 5 --warmup 2 --method-timeout 40 --out "$OUT/cce_rest.md" \
  2>&1 | tee -a "$OUT/bench.log" | tail -3 >>"$LOG"
note "== done after $((SECONDS - START))s"
