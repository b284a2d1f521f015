#!/usr/bin/env bash
# One GPU session's work on the dequantizer, prepared to run once on a lent device machine (never in CI):
#   1. the GPU throughput of the shipped default at 12 and 100 MP, with and without its self-check;
#   2. a wider, deeper dequantizer grown from the shipped one (its output unchanged at step 0), trained for a
#      fixed time with batches made by worker processes on the machine's CPU cores.
# Prepare here:  python tools/device_pack.py   (data and wheels into .device/, ignored by git)
# Run there:     run(command="bash tools/device_job.sh", carry=[".device"], timeout_s=600)
# Then here:     python benchmarks/depth_suite.py --weights <files_at>/depth-grown.safetensors --label grown
#                --methods midpoint learned          (held-out figures, on this machine)
# Knobs (environment): MINUTES (training budget, 5), DEVICE (cuda), WORKERS (12), BENCH (1: run step 1).
set -uo pipefail
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
MINUTES=${MINUTES:-5}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-12}
export PYTHONUNBUFFERED=1
if ! python3 -c "import OpenEXR" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print(torch.__version__)") > "$OUT/machine.txt" 2>&1

if [ "${BENCH:-1}" = 1 ]; then
    python3 benchmarks/bench_upscale_depth.py --device "$DEVICE" --sizes 12 100 --methods learned --bits 8 \
        --self-checks on off --out "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/bench.log"
fi

python3 -m bdx train depth --data .device/data/hdr --data .device/data/photos --data .device/data/sice_merges \
    --balance-folders --upscale-fraction 0.2 --init shipped --widths 48 128 --blocks 2 6 \
    --steps 1000000 --minutes "$MINUTES" --lr 1e-4 --batch-size 48 --crop 128 --validation-fraction 0.3 \
    --validate-every 2000 --checkpoint-every 2000 --device "$DEVICE" --workers "$WORKERS" \
    -o "$OUT/depth-grown.safetensors" --overwrite 2>&1 | tee "$OUT/train.log"
rm -f "$OUT/depth-grown.safetensors.ckpt.pt"  # 16 MiB at most come back per file; the weights are what matters
ls -la "$OUT"
