#!/usr/bin/env bash
# fp32 benchmark, one thread, batch 1: lowbit (JIT, --spec host) against ONNX Runtime
# (onnxruntime-node, one intra-op thread) on ResNet-18 and MobileNetV2 from
# tools/make_models.py --large, on the same input, measured in the same run: ROUNDS rounds,
# each timing lowbit then ONNX Runtime for ITERS iterations; the result is the median of the
# per-round medians and their ratio (lowbit / ORT; below 1 means lowbit is faster), plus the
# same ratio for CPU time per run and for the sum of per-layer median times, which are robust
# against a loaded machine.
# Not a test: timings depend on the machine and its load. Environment:
#   BUILD (default build/), ITERS (30), ROUNDS (3), LB_ORT_DIR (scratch folder for npm).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench=bench_fp32 iters=${ITERS:-30}
# shellcheck source=tools/bench_lib.sh
source "$root/tools/bench_lib.sh"
bench_prepare

printf '%-13s %9s %9s %6s  %9s %9s %6s  %9s %9s %6s\n' model "wall ms" ORT ratio "cpu ms" ORT ratio \
  "Σ ms" ORT ratio
for model in resnet18 mobilenet_v2; do
  onnx=$large/$model.onnx
  lb_med=() ort_med=() lb_cpu=() ort_cpu=() lb_sum=() ort_sum=()
  for ((r = 0; r < rounds; r++)); do
    out=$("$lowbit" bench "$onnx" --spec host -i "$large/input.npy" --iters "$iters" --warmup 3 --json)
    lb_med+=("$(field median_ms <<< "$out")") lb_cpu+=("$(field cpu_median_ms <<< "$out")")
    out=$("$lowbit" bench "$onnx" --spec host -i "$large/input.npy" --iters "$iters" --warmup 3 --json --profile)
    lb_sum+=("$(grep -o '"ms": [0-9.]*' <<< "$out" | awk '{ s += $2 } END { print s }')")
    out=$(ort_bench "$onnx" profile)
    ort_med+=("$(field median_ms <<< "$out")") ort_cpu+=("$(field cpu_median_ms <<< "$out")")
    ort_sum+=("$(field layer_sum_ms <<< "$out")")
  done
  lm=$(median_of "${lb_med[@]}") om=$(median_of "${ort_med[@]}")
  lc=$(median_of "${lb_cpu[@]}") oc=$(median_of "${ort_cpu[@]}")
  ls=$(median_of "${lb_sum[@]}") os=$(median_of "${ort_sum[@]}")
  printf '%-13s %9.3f %9.3f %6s  %9.3f %9.3f %6s  %9.3f %9.3f %6s\n' "$model" "$lm" "$om" \
    "$(ratio "$lm" "$om")" "$lc" "$oc" "$(ratio "$lc" "$oc")" "$ls" "$os" "$(ratio "$ls" "$os")"
done
echo "ratio = lowbit / ONNX Runtime (below 1: lowbit faster); medians of $rounds rounds x $iters"
echo "iterations, 1 thread. wall: latency per run (the headline figure). cpu: CPU time per run"
echo "(thread CPU time for lowbit; process CPU time for ORT, which computes in one worker thread)."
echo "Σ: sum over layers of each layer's median time (lowbit bench --profile, ORT's node profiler)."
echo "cpu and Σ are the figures to trust when other processes share the cores (load: $(cut -d' ' -f1-3 /proc/loadavg))."
