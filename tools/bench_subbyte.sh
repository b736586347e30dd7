#!/usr/bin/env bash
# Sub-byte benchmark on the digits models (and ResNet-18 with --large): `lowbit search`
# (strategy auto, labels, x86-64-avx2 spec: the bundled spec whose i8 activations admit the
# i8_w4 / i8_w2 combinations) makes a mixed plan; then, all-int8 against the mixed plan:
#   - object bytes and weight bytes (sizes of the compiled objects' .rodata),
#   - the plan's JIT output against the interpreter (bit for bit),
#   - latency (lowbit bench, CPU ms) of all-int8, of the mixed plan on the sub-byte kernels,
#     and of the same mixed plan with LB_SUBBYTE=0 (same weights on the int8 kernel): the last
#     ratio is the sub-byte kernels' throughput relative to the int8 kernel on the same shapes.
# With ARM=1, each mixed plan is also compiled for aarch64-dotprod and aarch64-i8mm (qemu
# -cpu max) and aarch64-neon (qemu -cpu cortex-a72, where the spec has the plan's combinations)
# and its AOT output on the first evaluation sample compared byte for byte with the interpreter.
# Not a test: timings depend on the machine and its load. Environment: BUILD (build/),
# SPEC (x86-64-avx2), ITERS (200), ROUNDS (3), ARM (0).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
lowbit=$build/lowbit
spec=${SPEC:-x86-64-avx2}
iters=${ITERS:-200}
rounds=${ROUNDS:-3}
models=$root/tests/models
work=$(mktemp -d "${TMPDIR:-/tmp}/lowbit-sub.XXXXXX")
trap 'rm -rf "$work"' EXIT
[ -x "$lowbit" ] || { echo "bench_subbyte: $lowbit not found: build first" >&2; exit 2; }

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p"; }
rodata() { size -A "$1" | awk '/^\.rodata|^\.lrodata/ { s += $2 } END { print s + 0 }'; }
cpu_ms() { # model calib [bench options...]: median over rounds of the CPU median
  local m=$1 c=$2; shift 2
  for _ in $(seq "$rounds"); do
    "$lowbit" bench "$m" --spec "$spec" --calib "$c" --iters "$iters" --warmup 20 --json "$@" 2> /dev/null |
      field cpu_median_ms
  done | median
}

# AOT AArch64 objects of the plan under qemu against the interpreter, first sample only.
arm_check() {
  local name=$1 onnx=$2 plan=$3 calib=$4 eval=$5 s cpu
  /usr/bin/python3 -c 'import sys, numpy as np; x = np.load(sys.argv[1])[:1]; np.save(sys.argv[2], x); x.tofile(sys.argv[3])' \
    "$eval" "$work/one.npy" "$work/one.bin"
  "$lowbit" run "$onnx" --spec "$spec" --plan "$plan" --calib "$calib" -i "$work/one.npy" -o "$work/ref.bin" > /dev/null 2>&1
  for s in aarch64-dotprod:max aarch64-i8mm:max aarch64-neon:cortex-a72; do
    cpu=${s#*:} s=${s%%:*}
    if ! "$lowbit" compile "$onnx" --spec "$s" --plan "$plan" --calib "$calib" -o "$work/a.o" > /dev/null 2>&1; then
      echo "  $s: the plan's combinations are not all in this spec"; continue
    fi
    aarch64-linux-gnu-gcc -static -O1 -std=c11 -I"$work" -DLB_HEADER='"a.h"' -DLB_PREFIX=a \
      "$root/tests/aot/harness.c" "$work/a.o" -lm -o "$work/h"
    qemu-aarch64 -cpu "$cpu" "$work/h" "$work/one.bin" "$work/aot.bin"
    echo "  $s (qemu -cpu $cpu): AOT $(cmp -s "$work/aot.bin" "$work/ref.bin" && echo == || echo '!=') interpreter, .rodata $(rodata "$work/a.o") B"
  done
}

printf '%-14s %9s %9s %9s %9s %7s  %9s %9s %9s %7s %7s %s\n' model "obj i8" "obj mix" "wt i8" \
  "wt mix" "bits" "ms i8" "ms mix" "ms mix8" "mix/i8" "sub/i8" "jit==interp"
for name in digits_mlp digits_cnn digits_resnet; do
  onnx=$models/$name.onnx
  calib=$models/digits_calib_x.npy eval=$models/digits_test_x.npy
  [ "$name" = digits_resnet ] && calib=$models/digits16_calib_x.npy eval=$models/digits16_test_x.npy
  plan=$work/$name.plan.yaml
  "$lowbit" search "$onnx" --spec "$spec" --calib "$calib" --eval "$eval" \
    --labels "$models/digits_test_y.npy" -o "$plan" -q > "$work/$name.search" 2>&1
  "$lowbit" compile "$onnx" --spec "$spec" --quantize int8 --calib "$calib" -o "$work/i8.o" > /dev/null 2>&1
  "$lowbit" compile "$onnx" --spec "$spec" --plan "$plan" --calib "$calib" -o "$work/mix.o" > /dev/null 2>&1
  wi8=$(rodata "$work/i8.o") wmix=$(rodata "$work/mix.o")
  bits=$(grep -o 'precision: i8_w[42]' "$plan" | sed 's/.*_w//' | sort | uniq -c | awk '{ printf "%sx%s ", $1, $2 }')
  if [ "$name" = digits_mlp ]; then # the MLP takes flat [N, 64] rows
    /usr/bin/python3 -c 'import sys, numpy as np; x = np.load(sys.argv[1]); np.save(sys.argv[2], x.reshape(len(x), -1))' "$eval" "$work/flat.npy"
    eval=$work/flat.npy
  fi
  "$lowbit" run "$onnx" --spec "$spec" --plan "$plan" --calib "$calib" -i "$eval" --batch -o "$work/interp.npy" --engine interp > /dev/null 2>&1
  "$lowbit" run "$onnx" --spec "$spec" --plan "$plan" --calib "$calib" -i "$eval" --batch -o "$work/jit.npy" --engine jit > /dev/null 2>&1
  same=$(cmp -s "$work/interp.npy" "$work/jit.npy" && echo yes || echo NO)
  t8=$(cpu_ms "$onnx" "$calib" --quantize int8)
  tm=$(cpu_ms "$onnx" "$calib" --plan "$plan")
  tm8=$(LB_SUBBYTE=0 cpu_ms "$onnx" "$calib" --plan "$plan")
  printf '%-14s %9s %9s %9s %9s %7s  %9.4f %9.4f %9.4f %7.3f %7.3f %s\n' "$name" \
    "$(stat -c %s "$work/i8.o")" "$(stat -c %s "$work/mix.o")" "$wi8" "$wmix" "${bits:-none}" \
    "$t8" "$tm" "$tm8" "$(awk "BEGIN { print $tm / $t8 }")" "$(awk "BEGIN { print $tm / $tm8 }")" "$same"
  sed -n 's/^search auto: /  search: /p' "$work/$name.search"
  [ "${ARM:-0}" = 1 ] && arm_check "$name" "$onnx" "$plan" "$calib" "$eval"
done
