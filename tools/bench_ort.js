// Times an ONNX model in ONNX Runtime (onnxruntime-node) with one intra-op and one inter-op
// thread on a .npy input: node bench_ort.js MODEL.onnx INPUT.npy ITERS WARMUP [profile]
// Prints one JSON line {"median_ms", "min_ms", "max_ms", "cpu_median_ms" (process CPU time per
// run: ORT computes in a worker thread, the JS thread sleeps)}; with "profile", a second session
// with ORT's node profiler runs ITERS more times and "layer_sum_ms" (the sum over nodes of
// each node's median time) is added: a figure that other processes on the machine disturb
// far less than whole-run latency. Used by tools/bench_fp32.sh, which installs
// onnxruntime-node in a scratch folder and puts it on NODE_PATH.
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

const options = {
  intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

function median(v) {
  v.sort((a, b) => a - b);
  const n = v.length;
  return n % 2 ? v[(n - 1) / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Sum over nodes of the median per-run node time (ms), from ORT's profiler trace.
async function layerSum(model, x, iters, warmup) {
  const dir = fs.mkdtempSync(require('os').tmpdir() + '/lb_ortprof_');
  const s = await ort.InferenceSession.create(model, { ...options, enableProfiling: true,
                                                       profileFilePrefix: dir + '/p' });
  const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
  for (let i = 0; i < warmup + iters; i++) await s.run(feeds);
  if (s.endProfiling) await s.endProfiling();
  await s.release();
  const files = fs.readdirSync(dir);
  const trace = JSON.parse(fs.readFileSync(dir + '/' + files[0], 'utf8'));
  fs.rmSync(dir, { recursive: true, force: true });
  const per = new Map();
  for (const e of trace)
    if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) {
      if (!per.has(e.name)) per.set(e.name, []);
      per.get(e.name).push(e.dur / 1000);
    }
  let sum = 0;
  for (const v of per.values()) sum += median(v.slice(-iters));
  return sum;
}

async function main() {
  const [model, input, itersArg, warmArg, mode] = process.argv.slice(2);
  const iters = Number(itersArg || 50), warmup = Number(warmArg || 5);
  const session = await ort.InferenceSession.create(model, options);
  const x = readNpy(input);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
  for (let i = 0; i < warmup; i++) await session.run(feeds);
  const t = [], c = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
    await session.run(feeds);
    const dc = process.cpuUsage(c0);
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
    c.push((dc.user + dc.system) / 1e3);
  }
  const res = { median_ms: median(t), min_ms: t[0], max_ms: t[iters - 1], cpu_median_ms: median(c) };
  if (mode === 'profile') res.layer_sum_ms = await layerSum(model, x, iters, warmup);
  console.log(JSON.stringify(res));
}

main().catch(e => { console.error('bench_ort: ' + e.message); process.exit(1); });
