#!/bin/sh
# Precision search benchmark (issue 6): for each digits model, runs `lowbit search` with
# --strategy auto and hago-greedy on the labelled test set and prints, per run, the chosen
# point (modeled cycles, share of all-int8, accuracy, weight bytes), the evaluations and the CPU
# seconds, then the Pareto front of the auto run with each plan's JIT latency on this host
# (--measure: the realized integer graph; sub-byte weights still run in int8 kernels). Plots,
# plans and full logs go to $OUT (default BUILD_DIR/bench). Usage:
#   tools/bench_search.sh [BUILD_DIR] [SPEC]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build-search}
SPEC=${2:-x86-64-avx2}
LOWBIT=$BUILD/lowbit
OUT=${OUT:-$BUILD/bench}
M=$ROOT/tests/models
[ -x "$LOWBIT" ] || { echo "bench_search: $LOWBIT not built" >&2; exit 2; }
mkdir -p "$OUT"

run() { # model calib test
  name=$(basename "$1" .onnx)
  for st in auto hago-greedy; do
    log=$OUT/$name.$st.txt
    "$LOWBIT" search "$1" --spec "$SPEC" --calib "$2" --eval "$3" --labels "$M/digits_test_y.npy" \
      --strategy "$st" --measure -o "$OUT/$name.$st.yaml" --plot "$OUT/$name.$st.svg" > "$log"
    printf '%-14s %-12s %s\n' "$name" "$st" "$(tail -n 1 "$log" | sed 's/^search [a-z-]*: //')"
  done
  sed -n '/^Pareto front/,/fp32/p' "$OUT/$name.auto.txt"
}

echo "spec $SPEC; chosen point per strategy (cost = modeled cycles), then the auto Pareto front"
run "$M/digits_cnn.onnx" "$M/digits_calib_x.npy" "$M/digits_test_x.npy"
run "$M/digits_mlp.onnx" "$M/digits64_calib_x.npy" "$M/digits64_test_x.npy"
run "$M/digits_ops.onnx" "$M/digits_calib_x.npy" "$M/digits_test_x.npy"
run "$M/digits_resnet.onnx" "$M/digits16_calib_x.npy" "$M/digits16_test_x.npy"
