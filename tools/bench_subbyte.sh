#!/usr/bin/env bash
# Sub-byte benchmark on the digits models (ResNet-18 instead with LARGE=1, see there): `lowbit search`
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
# SPEC (x86-64-avx2), ITERS (200), ROUNDS (3), ARM (0), LARGE (0), LB_ORT_DIR (as bench_int8.sh),
# PLAN (LARGE=1: a plan file for ResNet-18, e.g. from `lowbit search`, timed in the same rounds).
# Kernel-level figures: build/bench_gemm --sub SPEC [MxNxK ...].
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

digits() {
printf '%-14s %9s %9s %9s %9s %7s  %9s %9s %9s %7s %7s %s\n' model "obj i8" "obj mix" "wt i8" \
  "wt mix" "bits" "ms i8" "ms mix" "ms mix8" "mix/i8" "sub/i8" "jit==interp"
for name in digits_mlp digits_cnn digits_resnet; do
  onnx=$models/$name.onnx
  calib=$models/digits_calib_x.npy eval=$models/digits_test_x.npy
  [ "$name" = digits_resnet ] && calib=$models/digits16_calib_x.npy eval=$models/digits16_test_x.npy
  if [ "$name" = digits_mlp ]; then # the MLP takes flat [N, 64] rows (calibration checks shapes)
    for f in calib eval; do
      /usr/bin/python3 -c 'import sys, numpy as np; x = np.load(sys.argv[1]); np.save(sys.argv[2], x.reshape(len(x), -1))' "${!f}" "$work/flat_$f.npy"
    done
    calib=$work/flat_calib.npy eval=$work/flat_eval.npy
  fi
  plan=$work/$name.plan.yaml
  "$lowbit" search "$onnx" --spec "$spec" --calib "$calib" --eval "$eval" \
    --labels "$models/digits_test_y.npy" -o "$plan" -q > "$work/$name.search" 2>&1
  "$lowbit" compile "$onnx" --spec "$spec" --quantize int8 --calib "$calib" -o "$work/i8.o" > /dev/null 2>&1
  "$lowbit" compile "$onnx" --spec "$spec" --plan "$plan" --calib "$calib" -o "$work/mix.o" > /dev/null 2>&1
  wi8=$(rodata "$work/i8.o") wmix=$(rodata "$work/mix.o")
  bits=$(grep -o 'precision: i8_w[42]' "$plan" | sed 's/.*_w//' | sort | uniq -c | awk '{ printf "%sx%s ", $1, $2 }')
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
  if [ "${ARM:-0}" = 1 ]; then arm_check "$name" "$onnx" "$plan" "$calib" "$eval"; fi
done
}

# ---- ResNet-18 (LARGE=1): hand plans with every 3x3 conv of layer1-4 at int6 / int5 / int4 /
# int2 weights, and PLAN if given, against all-int8 and ONNX Runtime int8 (QDQ model from
# `lowbit quantize`, one thread) in the same rounds; CPU ms medians of ROUNDS rounds, weight
# bytes (.rodata) and the output SQNR against fp32 over the first 16 samples of calib64.npy
# (calibration: calib.npy).
[ "${LARGE:-0}" = 1 ] || { digits; exit 0; }
large=$root/tests/models/large onnx=$root/tests/models/large/resnet18.onnx
ort_dir=${LB_ORT_DIR:-${TMPDIR:-/tmp}/lowbit-ort}
[ -f "$onnx" ] || { echo "bench_subbyte: $onnx missing (tools/make_models.py --large)" >&2; exit 2; }
calib=$large/calib.npy
/usr/bin/python3 -c 'import sys, numpy as np; np.save(sys.argv[2], np.load(sys.argv[1])[:16])' \
  "$large/calib64.npy" "$work/eval.npy"
"$lowbit" compile "$onnx" --spec "$spec" --quantize int8 --calib "$calib" -o "$work/r_i8.o" \
  --plan-out "$work/r_i8.yaml" > /dev/null 2>&1
# the 16 3x3 convs: conv1 of every block (.../relu), conv2 of the first blocks of layer2-4
# (.../bn2, before the residual add the downsample conv takes) and of the others (.../relu_1);
# w6 / w5 / w4: all 16 at int6 / int5 / int4, w4l4: only layer4's (4 convs), w2: all at int2.
# Their weight tensors get the int8 max scales times 127/qmax (qmax 31, 15, 7, 1): a plan naming
# i8_w4 without its weight tensors keeps the int8 scale and clips the weights to +-7 (see
# targets/NEEDS.md, k4 01:02).
/usr/bin/python3 - "$work/r_i8.yaml" "$work" << 'PY'
import re, sys
src = open(sys.argv[1]).read().split('\n')
for name, bits, layers in (('w6', 6, '1234'), ('w5', 5, '1234'), ('w4', 4, '1234'), ('w4l4', 4, '4'), ('w2', 2, '1234')):
    qmax, out = (1 << (bits - 1)) - 1, []
    for l in src:
        m = re.match(r'  - \{output: "/layer(\d)/layer\d\.(\d)/([^"]+)", op: conv, precision: i8,', l)
        if m and m.group(1) in layers:
            o, blk = m.group(3), m.group(2)
            if o == 'relu/Relu_output_0' or o.startswith('bn2/') or (o == 'relu_1/Relu_output_0' and (blk == '1' or m.group(1) == '1')):
                l = l.replace('precision: i8,', 'precision: i8_w%d,' % bits)
        w = re.match(r'(  - \{name: "layer(\d)\.\d\.conv[12]\.weight[^"]*", role: weight, )dtype: i8, axis: 0, scale: \[([^\]]*)\](.*)$', l)
        if w and w.group(2) in layers:
            sc = ', '.join('%.9g' % (float(x) * 127.0 / qmax) for x in w.group(3).split(','))
            l = '%sdtype: i%d, axis: 0, scale: [%s]%s' % (w.group(1), bits, sc, w.group(4))
        out.append(l)
    open('%s/r_%s.yaml' % (sys.argv[2], name), 'w').write('\n'.join(out))
PY
"$lowbit" quantize "$onnx" --spec "$spec" --calib "$calib" -o "$work/r_qdq.onnx" -q
"$lowbit" run "$onnx" --spec "$spec" -i "$work/eval.npy" --batch -o "$work/r_f32.npy" --engine jit > /dev/null 2>&1
sqnr() { /usr/bin/python3 -c 'import sys, numpy as np; r = np.load(sys.argv[1]).astype(np.float64); y = np.load(sys.argv[2]).astype(np.float64); print("%.1f" % (10 * np.log10((r * r).sum() / ((r - y) ** 2).sum())))' "$@"; }
variants="i8 w6 w5 w4 w4l4 w2"
if [ -n "${PLAN:-}" ]; then cp "$PLAN" "$work/r_plan.yaml"; variants="$variants plan"; fi
declare -A sq wb
for v in $variants; do
  plan=(--plan "$work/r_$v.yaml")
  "$lowbit" compile "$onnx" --spec "$spec" "${plan[@]}" --calib "$calib" -o "$work/r_$v.o" > /dev/null 2>&1
  wb[$v]=$(rodata "$work/r_$v.o")
  "$lowbit" run "$onnx" --spec "$spec" "${plan[@]}" --calib "$calib" -i "$work/eval.npy" --batch -o "$work/r_$v.npy" --engine jit > /dev/null 2>&1
  sq[$v]=$(sqnr "$work/r_f32.npy" "$work/r_$v.npy")
done
declare -A ts
declare -a to=()
rbench() { "$lowbit" bench "$onnx" --spec "$spec" --calib "$calib" -i "$large/input.npy" --iters 30 --warmup 3 --json --plan "$work/r_$1.yaml" 2> /dev/null | field cpu_median_ms; }
for ((r = 0; r < rounds; r++)); do
  for v in $variants; do ts[$v]="${ts[$v]:-} $(rbench $v)"; done
  to+=("$(NODE_PATH="$ort_dir/node_modules" node "$root/tools/bench_ort.js" "$work/r_qdq.onnx" "$large/input.npy" 30 3 | sed -n 's/.*"cpu_median_ms": *\([0-9.]*\).*/\1/p')")
done
mo=$(printf '%s\n' "${to[@]}" | median)
echo
echo "ResNet-18 ($spec, 1 thread, CPU ms medians of $rounds rounds; SQNR vs fp32 on 16 samples)"
printf '%-26s %9s %9s %9s %12s\n' plan "cpu ms" "/ORT i8" "SQNR dB" "weight B"
for v in $variants; do
  m=$(printf '%s\n' ${ts[$v]} | median)
  printf '%-26s %9.2f %9.3f %9s %12s\n' "lowbit $v" "$m" "$(awk "BEGIN { print $m / $mo }")" "${sq[$v]}" "${wb[$v]}"
done
printf '%-26s %9.2f %9.3f\n' "ORT int8 (QDQ)" "$mo" 1
echo "i8: all int8; w6 / w5 / w4 / w2: the 16 3x3 convs of layer1-4 at int6 / int5 / int4 / int2 weights;"
echo "w4l4: layer4's only; plan: $(basename "${PLAN:-none}")"
