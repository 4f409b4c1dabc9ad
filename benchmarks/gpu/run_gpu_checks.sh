#!/usr/bin/env bash
# GPU checks for plugtron, run ONCE on a lent GPU machine (one H100/H200, Python 3.12 with torch
# preinstalled, no network, no megatron-core / Transformer Engine / cattrs).
#
#   bash benchmarks/gpu/run_gpu_checks.sh          # logs to $OUT (default /tmp/plugtron-gpu-checks)
#
# Steps, each bounded by `timeout` and all together by a 330 s budget (BUDGET_S), logs in $OUT:
#   00_setup.log      wheels from .whl/ into /tmp/site (--target: the preinstalled torch is untouched),
#                     plugtron staged there (benchmarks/gpu/stage_plugtron.py: no pip build, entry points kept)
#   01_env.log        nvidia-smi, versions, device name and compute capability
#   10_mfu.log        benchmarks/mfu.py: Llama 3.2 1B, bf16, 50 timed steps (retried with micro batch 2 on OOM)
#   20_train_tiny.log `plugtron train` of the tiny recipe on CUDA (1 process, 100 iterations)
#   30_pytest.log     GPU-relevant tests (presets against the real device capability, SDPA attention on CUDA, ...)
#   40_mfu_fusions.log with the budget left: mfu.py --fusions (Megatron's torch.compile'd SwiGLU + cross entropy)
#   summary.log       the lines that matter, and each step's exit status
#
# The wheels travel in .whl/ at the repository root (ignored by git: name it in the device tool's
# `carry`). Fetch them on a machine with network, from the repository root:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl megatron-core==0.16.1 cattrs==26.2.1 attrs==26.1.0 pluggy==1.6.0
# (cattrs 26.2 needs attrs >= 25.4, newer than the machine may have; pluggy pinned to the tested version.
# typing-extensions, numpy, packaging, pyyaml, psutil, safetensors come with the machine's torch stack.)
#
# On a machine without a GPU the script stops after 01_env.log with a clear message (exit 3);
# GPU_CHECKS_ALLOW_CPU=1 instead runs every step in a tiny CPU form (a dry run of this script).
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/plugtron-gpu-checks}"
SITE="${SITE:-/tmp/site}"
BUDGET_S="${BUDGET_S:-330}"
PY="${PY:-python3}"
mkdir -p "$OUT"
START=$(date +%s)
SUMMARY="$OUT/summary.log"
: > "$SUMMARY"

note() { echo "$*" | tee -a "$SUMMARY"; }

# run_step NAME LIMIT_S CMD...: CMD with its output in $OUT/NAME.log, killed after min(LIMIT_S, budget left)
run_step() {
    local name="$1" limit="$2"; shift 2
    local left=$(( BUDGET_S - ($(date +%s) - START) ))
    if (( left < 15 )); then note "[$name] skipped: time budget of ${BUDGET_S}s spent"; return 124; fi
    (( limit > left )) && limit=$left
    local t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    note "[$name] exit $rc after $(( $(date +%s) - t0 ))s (limit ${limit}s)$( (( rc == 124 || rc == 137 )) && echo ': TIMED OUT')"
    return $rc
}

# ---- setup -------------------------------------------------------------------------------------
shopt -s nullglob
wheels=(.whl/*.whl)
shopt -u nullglob
{
    if (( ${#wheels[@]} )); then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "${wheels[@]}"
    else
        echo "no wheels in .whl/: using what the Python environment already has"
    fi
    "$PY" benchmarks/gpu/stage_plugtron.py "$SITE"
} > "$OUT/00_setup.log" 2>&1
note "[00_setup] exit $? (${#wheels[@]} wheels from .whl/)"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1 TOKENIZERS_PARALLELISM=false

{
    nvidia-smi || echo "nvidia-smi: not available"
    "$PY" - <<'EOF'
import importlib.metadata as md, torch
print("torch", torch.__version__, "| cuda", torch.version.cuda, "| available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(), "| capability", torch.cuda.get_device_capability())
for pkg in ("megatron-core", "cattrs", "attrs", "pluggy", "transformer-engine", "triton"):
    try:
        print(pkg, md.version(pkg))
    except md.PackageNotFoundError:
        print(pkg, "not installed")
import plugtron, plugtron.plugin_manager as pm
print("plugtron from", plugtron.__file__, "| plugins:", sorted(pm.discover()))
EOF
} > "$OUT/01_env.log" 2>&1
note "[01_env] exit $?: $(grep -E '^device|^torch' "$OUT/01_env.log" | tr '\n' ' ')"

CPU_DRY=0
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    if [[ "${GPU_CHECKS_ALLOW_CPU:-0}" != 1 ]]; then
        note "error: no CUDA GPU visible (torch.cuda.is_available() is False); nothing GPU-side to check." \
             "Set GPU_CHECKS_ALLOW_CPU=1 for a CPU dry run of the steps."
        exit 3
    fi
    CPU_DRY=1
    note "GPU_CHECKS_ALLOW_CPU=1 and no GPU: dry run, every step in a tiny CPU form"
fi

# ---- (a) MFU of Llama 3.2 1B in bf16 -------------------------------------------------------------
if (( CPU_DRY )); then
    MFU_ARGS=(--cpu-smoke --num-layers 1 --hidden-size 64 --seq-length 64 --micro-batch-size 2
              --global-batch-size 4 --steps 2 --warmup 1)
else
    MFU_ARGS=(--steps 50 --warmup 5 --seq-length 2048 --micro-batch-size 4 --global-batch-size 16)
fi
run_step 10_mfu 200 "$PY" benchmarks/mfu.py "${MFU_ARGS[@]}"
if grep -q "OutOfMemoryError\|CUDA out of memory" "$OUT/10_mfu.log"; then
    note "[10_mfu] out of memory at micro batch 4: retrying with micro batch 2"
    run_step 11_mfu_mbs2 150 "$PY" benchmarks/mfu.py "${MFU_ARGS[@]}" --micro-batch-size 2
fi
for log in "$OUT"/1[01]_mfu*.log; do
    grep -hE "^(note|device|model|batch|loss|step time|throughput|MFU|mfu.py)" "$log" >> "$SUMMARY" || tail -5 "$log" >> "$SUMMARY"
done

# ---- (b) the training loop on CUDA: tiny recipe, one process -------------------------------------
if (( CPU_DRY )); then ITERS=4; else ITERS=100; fi
rm -rf /tmp/plugtron-tiny-ckpt
run_step 20_train_tiny 90 "$PY" -m plugtron train train.train_iters=$ITERS scheduler.lr_warmup_iters=$(( ITERS / 5 )) \
    train.eval_interval=50 train.eval_iters=2 logger.log_interval=25 \
    "checkpoint.save=/tmp/plugtron-tiny-ckpt" checkpoint.save_interval=50 \
    || tail -5 "$OUT/20_train_tiny.log" >> "$SUMMARY"
grep -hE "model:|iter +[0-9]+/|valid at" "$OUT/20_train_tiny.log" | tail -8 >> "$SUMMARY"

# ---- (c) tests whose outcome depends on the GPU ---------------------------------------------------
run_step 30_pytest 120 "$PY" -m pytest -q -x -p no:cacheprovider -m "not slow" \
    tests/test_precision_presets.py tests/test_sdpa_attention.py tests/test_mfu.py tests/test_packed_thd.py
tail -3 "$OUT/30_pytest.log" >> "$SUMMARY"

# ---- (d) if time is left: MFU again with Megatron's torch.compile fusions (SwiGLU, cross entropy) --------
run_step 40_mfu_fusions 150 "$PY" benchmarks/mfu.py "${MFU_ARGS[@]}" --fusions
grep -hE "^(device|step time|throughput|MFU|mfu.py)" "$OUT/40_mfu_fusions.log" >> "$SUMMARY" 2>/dev/null \
    || tail -5 "$OUT/40_mfu_fusions.log" >> "$SUMMARY" 2>/dev/null

note "total $(( $(date +%s) - START ))s; logs in $OUT"
