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
bench=bench_int8 iters=${ITERS:-20}
specs=${SPECS:-x86-64-avx2 host}
# shellcheck source=tools/bench_lib.sh
source "$root/tools/bench_lib.sh"
bench_prepare
work=$(mktemp -d "${TMPDIR:-/tmp}/lowbit-int8.XXXXXX")
trap 'rm -rf "$work"' EXIT

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

lb_bench() { "$lowbit" bench "$1" --spec "$2" -i "$large/input.npy" --iters "$iters" --warmup 3 --json "${@:3}" 2> /dev/null; }

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
    fm=$(median_of "${f[@]}") qm=$(median_of "${q[@]}") om=$(median_of "${o[@]}")
    ofm=$(median_of "${of[@]}") fcm=$(median_of "${fc[@]}") qcm=$(median_of "${qc[@]}")
    ocm=$(median_of "${oc[@]}")
    printf '%-13s %-12s %8.3f %8.3f %8.3f %8.3f  %8s %8s  %9s %9s\n' "$model" "$spec" "$fm" "$qm" "$om" \
      "$ofm" "$(ratio "$qm" "$fm")" "$(ratio "$qm" "$om")" "$(ratio "$qcm" "$fcm")" "$(ratio "$qcm" "$ocm")"
  done
done
echo "ms: medians of $rounds rounds x $iters runs, 1 thread; i8/fp32 = lowbit int8 / lowbit fp32,"
echo "i8/ORT = lowbit int8 / ONNX Runtime on the QDQ model; cpu columns use CPU time per run"
