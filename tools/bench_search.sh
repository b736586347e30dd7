#!/bin/sh
# Precision search benchmark (issue 6): for each digits model, runs `lowbit search` on the
# labelled test set three ways: --strategy auto and hago-greedy on the spec's MODELED costs
# (--time-front: the front's plans are JIT-timed whole on this host, thread CPU medians), and
# auto on MEASURED per-layer costs (--measure: every layer variant JIT-timed, cached in
# $OUT/measure.tsv). Prints each run's summary, the auto Pareto front with the measured
# latency column, and a table: modeled cost of the chosen plan vs all-int8 (the acceptance
# asks >= 30% lower within 1 point of fp32) and its measured latency vs all-int8 (same run).
# Plots, plans and logs go to $OUT (default BUILD_DIR/bench). Usage:
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
TABLE=$OUT/table.txt
: > "$TABLE"

# The measured latency (us) of the front line tagged $2 in log $1.
lat() { awk -v t="$2" '$1 == t && /measured/ { print $NF == "us" ? $(NF-1) : "" }' "$1" | head -n 1; }
# chosen modeled/measured cost %, quality and fp32 quality from the summary line of log $1.
summary() {
  tail -n 1 "$1" | sed -E 's/.*chosen (modeled|measured) cost ([0-9.]+)% .*quality ([0-9.]+)% \(fp32 ([0-9.]+)%.*/\2 \3 \4/'
}

run() { # model calib test
  name=$(basename "$1" .onnx)
  for st in auto hago-greedy measured; do
    log=$OUT/$name.$st.txt
    case $st in
      measured) args="--strategy auto --measure --measure-cache $OUT/measure.tsv" ;;
      *) args="--strategy $st --time-front" ;;
    esac
    # shellcheck disable=SC2086
    "$LOWBIT" search "$1" --spec "$SPEC" --calib "$2" --eval "$3" --labels "$M/digits_test_y.npy" \
      $args -o "$OUT/$name.$st.yaml" --plot "$OUT/$name.$st.svg" > "$log"
    printf '%-14s %-12s %s\n' "$name" "$st" "$(tail -n 1 "$log" | sed 's/^search [a-z-]*: //')"
    read -r cost q fq <<EOF
$(summary "$log")
EOF
    c=$(lat "$log" chosen); i=$(lat "$log" int8)
    secs=$(tail -n 1 "$log" | sed -E 's/.* evaluations in ([0-9.]+) s.*/\1/')
    awk -v n="$name" -v s="$st" -v c="$cost" -v q="$q" -v f="$fq" -v lc="$c" -v li="$i" -v t="$secs" 'BEGIN {
      r = (lc != "" && li != "" && li > 0) ? sprintf("%.2f (%s / %s us)", lc / li, lc, li) : "(chosen = int8)"
      printf "%-14s %-12s %7.1f%% %8s %8.2f%% %8.2f%% %7.2f s   %s\n", n, s, 100 - c, (f - q <= 1.0 ? "yes" : "no"), q, f, t, r
    }' >> "$TABLE"
  done
  sed -n '/^Pareto front/,/^search/p' "$OUT/$name.auto.txt" | sed '$d'
}

echo "spec $SPEC; per model: auto (modeled), hago-greedy (modeled), auto on measured costs"
run "$M/digits_cnn.onnx" "$M/digits_calib_x.npy" "$M/digits_test_x.npy"
run "$M/digits_mlp.onnx" "$M/digits64_calib_x.npy" "$M/digits64_test_x.npy"
run "$M/digits_ops.onnx" "$M/digits_calib_x.npy" "$M/digits_test_x.npy"
run "$M/digits_resnet.onnx" "$M/digits16_calib_x.npy" "$M/digits16_test_x.npy"
echo
echo "cost = reduction of the chosen plan's cost (modeled; 'measured' row: measured) vs all-int8"
printf '%-14s %-12s %8s %8s %9s %9s %9s   %s\n' model strategy cost "<=1pt" accuracy fp32 search \
  "latency chosen/int8 (JIT, thread CPU median)"
cat "$TABLE"
