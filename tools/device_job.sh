#!/usr/bin/env bash
# One GPU session's work on the dequantizer, prepared to run once on a lent device machine (never in CI):
#   1. two pure-torch dequantizers (no contour prior: a U-Net whose coarser levels give the long reach, and a tone
#      head whose interpolated block tones are each pixel's prior) trained side by side from scratch for a fixed time,
#      batches made by worker processes on the machine's CPU cores: fast (16,48,128 channels) and medium (24,64,128);
#      beside them, on the same GPU, the shipped 3-6-bit network fine-tuned further (the 4->8 target), and a wider
#      HDR feedback network (width 64) trained from scratch, for the same time;
#   2. the GPU throughput of the shipped default and of the fast one at 12 and 100 MP, with and without the self-check.
# Prepare here:  python tools/device_pack.py   (data and wheels into .device/, ignored by git)
# Run there:     run(command="bash tools/device_job.sh", carry=[".device"], timeout_s=600)
# Then here:     python benchmarks/depth_suite.py --weights <files_at>/depth-fast.safetensors --label fast
#                --methods midpoint learned          (held-out figures, on this machine; the same with
#                depth-lowbit.safetensors and --categories kodak --kodak-bits 3 4 5 6)
#                python benchmarks/hdr_suite.py --weights <files_at>/hdr-wide.safetensors
# Knobs (environment): MINUTES (training budget, 5), DEVICE (cuda), WORKERS (3 per prior-free run), BENCH (1: run step 2).
set -uo pipefail
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
MINUTES=${MINUTES:-5}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
if ! python3 -c "import OpenEXR" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print(torch.__version__)"; nproc) > "$OUT/machine.log" 2>&1

train() {  # name widths blocks lr
    python3 -m bdx train depth --data .device/data/hdr --data .device/data/photos --data .device/data/sice_merges \
        --balance-folders --upscale-fraction 0.2 --prior none --tone-head --gate --norm --gate-limit 8 --head-kernel 3 --eight-bit-fraction 0.45 --widths "$2" --blocks "$3" \
        --steps 1000000 --minutes "$MINUTES" --lr "$4" --batch-size 16 --crop 256 --validation-fraction 0.3 \
        --validate-every 3000 --checkpoint-every 3000 --device "$DEVICE" --workers "$WORKERS" \
        -o "$OUT/depth-$1.safetensors" --overwrite > "$OUT/train-$1.log" 2>&1
}
train fast 16,48,128 1,1,3 2e-4 &
train medium 24,64,128 1,2,3 2e-4 &
python3 -m bdx train depth --data .device/data/hdr --data .device/data/photos --data .device/data/sice_merges \
    --balance-folders --upscale-fraction 0.2 --init weights/depth-contour-gated-lowbit-v3.safetensors --bits 3 6 \
    --eight-bit-fraction 0 --steps 1000000 --minutes "$MINUTES" --lr 1e-4 --batch-size 24 --crop 128 \
    --validation-fraction 0.3 --validate-every 3000 --checkpoint-every 3000 --device "$DEVICE" --workers 6 \
    -o "$OUT/depth-lowbit.safetensors" --overwrite > "$OUT/train-lowbit.log" 2>&1 &
python3 -m bdx train hdr --data .device/data/hdr --data .device/data/sice_merges --width 64 --iterations 4 --target-scale input \
    --steps 1000000 --minutes "$MINUTES" --lr 5e-4 --batch-size 16 --crop 256 --clipped-weight 1.0 \
    --validate-every 3000 --checkpoint-every 3000 --device "$DEVICE" --workers 1 \
    -o "$OUT/hdr-wide.safetensors" --overwrite > "$OUT/train-hdr.log" 2>&1 &
wait
for name in machine fast medium lowbit hdr; do echo "== $name"; cat "$OUT/train-$name.log" 2>/dev/null || cat "$OUT/$name.log"; done > "$OUT/train_logs.txt"
rm -f "$OUT/machine.log" "$OUT"/hdr-wide.safetensors.ckpt.pt
# 8 files at most come back: the weights, the logs, and the fast run's checkpoint (15 MB) to resume it
rm -f "$OUT"/train-*.log "$OUT"/depth-medium.safetensors.ckpt.pt "$OUT"/depth-lowbit.safetensors.ckpt.pt
tail -n 4 "$OUT/train_logs.txt"
grep -h "step\|Error\|error" "$OUT/train_logs.txt" | tail -n 12

if [ "${BENCH:-1}" = 1 ]; then  # the shipped default, then the fast network
    timeout 100 python3 benchmarks/bench_upscale_depth.py --device "$DEVICE" --sizes 12 100 --methods learned --bits 8 \
        --self-checks on off --out "$OUT/gpu_bench_default.json" 2>&1 | tail -n 8
    [ -f "$OUT/depth-fast.safetensors" ] && timeout 80 python3 benchmarks/bench_upscale_depth.py --device "$DEVICE" \
        --sizes 12 100 --methods learned --bits 8 --self-checks on off --weights "$OUT/depth-fast.safetensors" \
        --out "$OUT/gpu_bench_fast.json" 2>&1 | tail -n 8
fi
ls -la "$OUT"
