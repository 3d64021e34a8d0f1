#!/usr/bin/env bash
# The prepared GPU check of issue #9, one script: on the device machine (whose python3 holds
# PyTorch with CUDA; netsight runs from this checkout, nothing to install), it times
#   1. the four core protocols (LeNet5, LSTM-128, GRU-128, RNN-128), 3 seeds one by one and as a fleet;
#   2. the whole 39-run suite's training with fleets on;
# and writes JSON into $OUT (the device tool brings it back) or benchmarks/results/.
#
#   bash benchmarks/gpu.sh                                   # on a GPU: the full protocols
#   DEVICE=cpu ITERATIONS=4 SEEDS=2 bash benchmarks/gpu.sh   # the same script, CI-size, on a CPU (.ci/run does)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
DEST=${OUT:-benchmarks/results}
ITER_FLAG=${ITERATIONS:+--iterations $ITERATIONS}
SEED_FLAG=${SEEDS:+--seeds $SEEDS}
MEMBERS=${SEEDS:-3}
TAG=${TAG:-$DEVICE}
mkdir -p "$DEST"
"$PY" -c "import torch, platform; print('torch', torch.__version__, '| device:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or 'cpu')"
"$PY" benchmarks/bench_fleet.py --device "$DEVICE" --families lenet5,lstm,gru,rnn --members "$MEMBERS" $ITER_FLAG --json "$DEST/fleet-$TAG.json"
"$PY" benchmarks/bench_suite.py --device "$DEVICE" --fleet on $ITER_FLAG $SEED_FLAG --json "$DEST/suite-fleet-$TAG.json"
if [ -n "${ITERATIONS:-}" ] || [ "${SUITE_SEQUENTIAL:-0}" = 1 ]; then  # one by one: minutes on a GPU, so only on request
  "$PY" benchmarks/bench_suite.py --device "$DEVICE" --fleet off $ITER_FLAG $SEED_FLAG --json "$DEST/suite-single-$TAG.json"
fi
echo "results in $DEST"
