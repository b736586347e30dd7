#!/usr/bin/env bash
# tools/bench_lib.sh: what the benchmark scripts share, sourced by them (not run): their
# settings, their preparation (lowbit built, node and npm, the large models, onnxruntime-node
# installed) and the arithmetic on their figures. The caller sets root (the checkout), bench
# (its name, for messages) and iters; every failure is one line and exit 2. Environment:
# BUILD (default build/), ROUNDS (3), LB_ORT_DIR (scratch folder for npm, shared by the scripts).

# shellcheck disable=SC2154,SC2034 # root, bench and iters: set by the caller; rounds: read by it
build=${BUILD:-$root/build}
lowbit=$build/lowbit
rounds=${ROUNDS:-3}
ort_dir=${LB_ORT_DIR:-${TMPDIR:-/tmp}/lowbit-ort}
large=$root/tests/models/large

die() { echo "$bench: $*" >&2; exit 2; }

# Makes what the benchmarks need when it is missing: the large models, onnxruntime-node (CPU).
bench_prepare() {
  [ -x "$lowbit" ] || die "$lowbit not found: build first (cmake -S . -B build && make -C build)"
  command -v node > /dev/null && command -v npm > /dev/null || die "node and npm are needed for ONNX Runtime"
  if [ ! -f "$large/resnet18.onnx" ] || [ ! -f "$large/mobilenet_v2.onnx" ]; then
    echo "$bench: making the large models (tools/make_models.py --large)"
    /usr/bin/python3 "$root/tools/make_models.py" --large
  fi
  if [ ! -d "$ort_dir/node_modules/onnxruntime-node" ]; then
    echo "$bench: installing onnxruntime-node into $ort_dir (CPU only)"
    mkdir -p "$ort_dir"
    # the install step would otherwise try to download GPU libraries
    (cd "$ort_dir" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund onnxruntime-node > npm.log 2>&1) ||
      die "npm install failed: see $ort_dir/npm.log"
  fi
}

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# median of the arguments
median_of() { printf '%s\n' "$@" | median; }
# the number after "NAME": in the JSON on stdin
field() { sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p"; }
ratio() { awk "BEGIN { printf \"%.3f\", $1 / $2 }"; }
# ONNX Runtime (tools/bench_ort.js) on model $1 with the large input; more arguments pass on.
ort_bench() { NODE_PATH="$ort_dir/node_modules" node "$root/tools/bench_ort.js" "$1" "$large/input.npy" "$iters" 3 "${@:2}"; }
