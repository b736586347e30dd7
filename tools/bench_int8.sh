#!/usr/bin/env bash
# int8 benchmark, one thread, batch 1, on ResNet-18 and MobileNetV2 (tools/make_models.py
# --large): lowbit int8 (bench --quantize int8) against lowbit fp32 and against ONNX Runtime
# (onnxruntime-node, one thread) running the QDQ int8 model that `lowbit quantize` writes from
# the same calibration data, all in the same run: ROUNDS rounds, each timing every engine for
# ITERS iterations; figures are medians of the per-round medians (wall and thread/process CPU
# time; CPU time is what a loaded machine disturbs least). Ratios below 1: int8 is faster.
# Not a test: timings depend on the machine and its load. Environment:
#   BUILD (default build/), SPECS ("x86-64-avx2 host"), ITERS (20), ROUNDS (3),
#   LB_ORT_DIR (scratch folder for npm, shared with bench_fp32.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
lowbit=$build/lowbit
iters=${ITERS:-20}
rounds=${ROUNDS:-3}
specs=${SPECS:-x86-64-avx2 host}
ort_dir=${LB_ORT_DIR:-${TMPDIR:-/tmp}/lowbit-ort}
large=$root/tests/models/large
work=$(mktemp -d "${TMPDIR:-/tmp}/lowbit-int8.XXXXXX")
trap 'rm -rf "$work"' EXIT

die() { echo "bench_int8: $*" >&2; exit 2; }
[ -x "$lowbit" ] || die "$lowbit not found: build first (cmake -S . -B build && make -C build)"
command -v node > /dev/null && command -v npm > /dev/null || die "node and npm are needed for ONNX Runtime"
if [ ! -f "$large/resnet18.onnx" ] || [ ! -f "$large/mobilenet_v2.onnx" ]; then
  echo "bench_int8: making the large models (tools/make_models.py --large)"
  /usr/bin/python3 "$root/tools/make_models.py" --large
fi
if [ ! -d "$ort_dir/node_modules/onnxruntime-node" ]; then
  echo "bench_int8: installing onnxruntime-node into $ort_dir (CPU only)"
  mkdir -p "$ort_dir"
  (cd "$ort_dir" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund onnxruntime-node > npm.log 2>&1) ||
    die "npm install failed: see $ort_dir/npm.log"
fi

# Calibration set: 8 perturbed copies of the benchmark input (what matters here is speed; the
# integer graph and the QDQ model come from the same samples, so they compute the same thing).
/usr/bin/python3 - "$large/input.npy" "$work/calib.npy" << 'EOF'
import sys
import numpy as np
x = np.load(sys.argv[1]).astype(np.float32)
r = np.random.default_rng(0)
np.save(sys.argv[2], np.concatenate([x + 0.05 * r.standard_normal(x.shape).astype(np.float32)
                                     for _ in range(8)]))
EOF

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p"; }
ratio() { awk "BEGIN { printf \"%.3f\", $1 / $2 }"; }
lb_bench() { "$lowbit" bench "$1" --spec "$2" -i "$large/input.npy" --iters "$iters" --warmup 3 --json "${@:3}" 2> /dev/null; }
ort_bench() { NODE_PATH="$ort_dir/node_modules" node "$root/tools/bench_ort.js" "$1" "$large/input.npy" "$iters" 3; }

printf '%-13s %-12s %8s %8s %8s %8s  %8s %8s  %9s %9s\n' model spec "fp32 ms" "int8 ms" "ORT i8" \
  "ORT f32" "i8/fp32" "i8/ORT" "cpu i8/f" "cpu i8/O"
for model in resnet18 mobilenet_v2; do
  onnx=$large/$model.onnx
  for spec in $specs; do
    qdq=$work/$model.$spec.qdq.onnx
    "$lowbit" quantize "$onnx" --spec "$spec" --calib "$work/calib.npy" -o "$qdq" -q ||
      die "lowbit quantize $model --spec $spec failed"
    declare -a f=() q=() o=() of=() fc=() qc=() oc=()
    for ((r = 0; r < rounds; r++)); do
      out=$(lb_bench "$onnx" "$spec") && f+=("$(field median_ms <<< "$out")") fc+=("$(field cpu_median_ms <<< "$out")")
      out=$(lb_bench "$onnx" "$spec" --quantize int8 --calib "$work/calib.npy") &&
        q+=("$(field median_ms <<< "$out")") qc+=("$(field cpu_median_ms <<< "$out")")
      out=$(ort_bench "$qdq") && o+=("$(field median_ms <<< "$out")") oc+=("$(field cpu_median_ms <<< "$out")")
      out=$(ort_bench "$onnx") && of+=("$(field median_ms <<< "$out")")
    done
    fm=$(printf '%s\n' "${f[@]}" | median) qm=$(printf '%s\n' "${q[@]}" | median)
    om=$(printf '%s\n' "${o[@]}" | median) ofm=$(printf '%s\n' "${of[@]}" | median)
    fcm=$(printf '%s\n' "${fc[@]}" | median) qcm=$(printf '%s\n' "${qc[@]}" | median)
    ocm=$(printf '%s\n' "${oc[@]}" | median)
    printf '%-13s %-12s %8.3f %8.3f %8.3f %8.3f  %8s %8s  %9s %9s\n' "$model" "$spec" "$fm" "$qm" "$om" \
      "$ofm" "$(ratio "$qm" "$fm")" "$(ratio "$qm" "$om")" "$(ratio "$qcm" "$fcm")" "$(ratio "$qcm" "$ocm")"
  done
done
echo "ms: medians of $rounds rounds x $iters runs, 1 thread; i8/fp32 = lowbit int8 / lowbit fp32,"
echo "i8/ORT = lowbit int8 / ONNX Runtime on the QDQ model; cpu columns use CPU time per run"
