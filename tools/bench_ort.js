// Times an ONNX model in ONNX Runtime (onnxruntime-node) with one intra-op and one inter-op
// thread on a .npy input: node bench_ort.js MODEL.onnx INPUT.npy ITERS WARMUP
// Prints one JSON line {"median_ms", "min_ms", "max_ms"}. Used by tools/bench_fp32.sh, which
// installs onnxruntime-node in a scratch folder and puts it on NODE_PATH.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

// Minimal .npy reader: little-endian float32, C order (what tools/make_models.py writes).
function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(path + ': not a .npy file');
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header))
    throw new Error(path + ': expected little-endian float32 in C order');
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').filter(s => s.trim()).map(Number);
  const off = hstart + hlen;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length));
  return { shape, data };
}

async function main() {
  const [model, input, itersArg, warmArg] = process.argv.slice(2);
  const iters = Number(itersArg || 50), warmup = Number(warmArg || 5);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const x = readNpy(input);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
  for (let i = 0; i < warmup; i++) await session.run(feeds);
  const t = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  t.sort((a, b) => a - b);
  const med = iters % 2 ? t[(iters - 1) / 2] : 0.5 * (t[iters / 2 - 1] + t[iters / 2]);
  console.log(JSON.stringify({ median_ms: med, min_ms: t[0], max_ms: t[iters - 1] }));
}

main().catch(e => { console.error('bench_ort: ' + e.message); process.exit(1); });
