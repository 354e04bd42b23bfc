#!/usr/bin/env bash
# Train on a lent GPU machine that can reach nothing outside (no package registry, no
# Debian mirror). How `full` (and the GPU run of `small`) were trained; see weights/README.md.
#
# The corpus travels as parts made here with `python -m training.bundle pack --out .gpu/bundle
# --part-mb 58 --subsample ast-=4 bg=3` (170 MB: tuxpaint speech and noises, a quarter of the
# asterisk prompts, a third of the bg validation speaker; no festvox, no TTS voices),
# the wheels the data code needs and that machine lacks (soundfile, cffi, pycparser, soxr,
# pyroomacoustics, g722, platformdirs; cp312 manylinux, fetched with `pip download --no-deps
# --only-binary=:all: --python-version 3.12 ...`) in .gpu/whl. Each step is one call on that
# machine, from the repository root; a call carries at most 64 MiB, so the parts (58 MB each)
# come one per call and are stashed outside the checkout while the machine is held:
#
#   bash training/lent_gpu.sh stash        # copy the .gpu/bundle parts this call carried aside
#   bash training/lent_gpu.sh bench        # GPU steps/s of small and full at a few batch sizes
#   bash training/lent_gpu.sh run          # unpack, make the data, start training (background)
#   bash training/lent_gpu.sh finish       # wait for the training runs, copy results to $OUT
#
# Settings (environment): EXAMPLES (train mixtures, 8000), VAL (160), SEED (11), WORKERS
# (cores - 1), ARCHS ("full small"), BATCH_full / BATCH_small (128), END_MINUTES (18: the
# training runs end this many minutes after `run` started, whatever the data took),
# STRENGTH_WEIGHT (0.25), LR (1e-3).
set -euo pipefail

STASH=${STASH:-/root/percepnet-lent}
mkdir -p "$STASH"
REPO=$(pwd)

setup_env() {
    if [ ! -d /tmp/site ] && compgen -G "$STASH/whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --target /tmp/site "$STASH"/whl/*.whl
    fi
    mkdir -p /tmp/pp
    ln -sfn "$REPO" /tmp/pp/percepnet
    export PYTHONPATH=/tmp/site:/tmp/pp:$REPO
    export PERCEPNET_DATA_DIR=$STASH/data
    export PYTHONUNBUFFERED=1
}

cmd=${1:-}
case "$cmd" in
stash)
    for f in .gpu/bundle/part-* ; do [ -e "$f" ] && cp "$f" "$STASH/"; done
    if [ -d .gpu/whl ]; then mkdir -p "$STASH/whl" && cp .gpu/whl/*.whl "$STASH/whl/"; fi
    ls -la "$STASH" "$STASH/whl" 2>/dev/null || true
    ;;
bench)
    setup_env
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 - <<'EOF'
import time, torch
from percepnet.dsp.model_config import ARCHITECTURES
from training.model import PercepNetModel
from training.train import percepnet_loss
torch.set_float32_matmul_precision("high")
dev = torch.device("cuda")
for name in ("small", "full"):
    for batch in (32, 64, 128):
        torch.manual_seed(0)
        m = PercepNetModel(ARCHITECTURES[name]).to(dev)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        x = torch.randn(batch, 1000, 70, device=dev)
        g = torch.rand(batch, 1000, 34, device=dev)
        mask = torch.ones_like(g)
        for i in range(7):
            if i == 2:
                torch.cuda.synchronize(); t0 = time.perf_counter()
            gh, rh = m(x)
            loss = percepnet_loss(g, g, gh, rh, mask, 0.25)
            opt.zero_grad(); loss.backward(); opt.step(); m.clip_weights()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / 5
        print(f"{name} batch {batch}: {dt*1000:.0f} ms/step, {batch*1000/dt/1e3:.0f} k frames/s",
              flush=True)
EOF
    ;;
run)
    setup_env
    t_start=$(date +%s)
    : "${EXAMPLES:=8000}" "${VAL:=160}" "${SEED:=11}" "${ARCHS:=full small}"
    : "${WORKERS:=$(( $(nproc) - 1 ))}" "${END_MINUTES:=18}" "${STRENGTH_WEIGHT:=0.25}" "${LR:=1e-3}"
    echo "$t_start" > "$STASH/run-started"
    if [ ! -f "$STASH/data/manifest-v2.json" ]; then
        python3 -m training.bundle unpack "$STASH"/part-* --data-dir "$STASH/data"
    fi
    python3 -c "import numpy, numba, scipy, soundfile, soxr, pyroomacoustics, torch; print('numpy', numpy.__version__, 'numba', numba.__version__, 'torch', torch.__version__)"
    # one example first: numba compiles (and caches) the kernels once, not in every worker
    python3 -m training.data --out "$STASH/warm" --train 1 --val 0 --workers 1 --seed 0 2>&1 | tail -1
    echo "data: $EXAMPLES + $VAL examples, $WORKERS workers ($(date +%T))"
    python3 -m training.data --out "$STASH/shards" --train "$EXAMPLES" --val "$VAL" \
        --seconds 10 --seed "$SEED" --workers "$WORKERS" \
        --speed-semitones 3 --speed-range 0.84 1.19 2>&1 | tr '\r' '\n' | grep -E 'examples' | awk 'NR % 500 == 0' || true
    ls "$STASH/shards/train" | head -3
    now=$(date +%s)
    minutes=$(python3 -c "print(max(4.0, ($t_start + $END_MINUTES * 60 - $now) / 60 - 1.0))")
    echo "data done at $(date +%T); training for $minutes min"
    mkdir -p "$STASH/out" "$STASH/logs"
    for arch in $ARCHS; do
        var=BATCH_$arch
        batch=${!var:-128}
        setsid nohup python3 -m training.train --train "$STASH/shards/train" \
            --val "$STASH/shards/val" --arch "$arch" --epochs 10000 --batch "$batch" \
            --seq-frames 1000 --seed "$SEED" --lr "$LR" --strength-weight "$STRENGTH_WEIGHT" \
            --schedule-minutes "$minutes" --export-best --device "${DEVICE:-cuda}" --out "$STASH/out" \
            --name "$arch" --checkpoints "$STASH/ckpt-$arch" \
            > "$STASH/logs/$arch.log" 2>&1 < /dev/null &
        echo "started $arch (batch $batch), log $STASH/logs/$arch.log"
    done
    # stay in the call while the machine has time left in it: print progress
    while [ $(( $(date +%s) - t_start )) -lt ${STAY_S:-560} ]; do
        sleep 30
        for arch in $ARCHS; do
            echo "$arch: $(grep -E '^epoch' "$STASH/logs/$arch.log" | tail -1)"
        done
    done
    ;;
finish)
    : "${ARCHS:=full small}"
    t0=$(date +%s)
    while pgrep -f "training.train" >/dev/null && [ $(( $(date +%s) - t0 )) -lt ${WAIT_S:-540} ]; do
        sleep 20
        for arch in $ARCHS; do
            echo "$arch: $(grep -E '^epoch' "$STASH/logs/$arch.log" | tail -1)"
        done
    done
    for arch in $ARCHS; do
        echo "== $arch"; grep -E '^(epoch|exported|training)' "$STASH/logs/$arch.log" | tail -60
        cp "$STASH/out/$arch.npz" "$STASH/out/$arch.json" "$OUT/" 2>/dev/null || echo "$arch: not exported"
        cp "$STASH/logs/$arch.log" "$OUT/$arch.log"
    done
    # the small model's float weights (no optimiser): a starting point for fine-tuning on a CPU
    python3 - <<EOF || true
import torch
s = torch.load("$STASH/ckpt-small/last.pt", weights_only=True, map_location="cpu")
torch.save({k: s[k] for k in ("fingerprint", "model", "history", "epoch", "step",
                              "feat_mean", "feat_std")}, "$OUT/small-gpu-model.pt")
EOF
    ls -la "$OUT"
    ;;
*)
    echo "usage: $0 stash|bench|run|finish" >&2
    exit 2
    ;;
esac
