#!/bin/sh
# Times the reference interpreter on ResNet-18 and MobileNetV2 (random weights, 1x3x224x224) with
# `lowbit run --engine interp`, best of N runs, and `lowbit info` (import only) for comparison;
# checks the output against torch's. Makes the models first if tests/models/large/ is empty.
# usage: tools/bench_interp.sh [BUILD_DIR] [RUNS]     (defaults: build, 3)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
runs=${2:-3}
large=$root/tests/models/large
lowbit=$build/lowbit
[ -x "$lowbit" ] || { echo "bench_interp: $lowbit not built" >&2; exit 2; }
[ -f "$large/resnet18.onnx" ] || /usr/bin/python3 "$root/tools/make_models.py" --large >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# best_ms CMD...: prints the fastest wall time of $runs runs of CMD in milliseconds.
best_ms() {
  best=
  i=0
  while [ $i -lt "$runs" ]; do
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    if [ -z "$best" ] || [ $ms -lt $best ]; then best=$ms; fi
    i=$((i + 1))
  done
  echo "$best"
}

for m in resnet18 mobilenet_v2; do
  model=$large/$m.onnx
  info=$(best_ms "$lowbit" info "$model")
  run=$(best_ms "$lowbit" run "$model" -i "$large/input.npy" -o "$tmp/$m.npy" --engine interp)
  err=$(/usr/bin/python3 -c "import numpy as n; a=n.load('$tmp/$m.npy'); b=n.load('$large/${m}_torch_out.npy'); print('%.3g' % abs(a-b).max())")
  echo "$m: lowbit run ${run} ms (import+interpret), lowbit info ${info} ms (import), max|out-torch| $err"
done
