// Float64 audit of a model's float32 numerics, op by op.
//   node tools/f64-audit.mjs [--grad [--param NAME] | --export DIR] [config] [N C H W] [train|eval]
// (needs `pnpm build`)
// Forward (default): every op of one traced forward is recomputed in float64 on the CPU from the
// same float32 inputs, and its relative error printed (worst first, and per op type).
// --grad: one training step's backward (Σ over heads of mean pixel cross-entropy, fixed random
// labels) twice: (1) op by op, each op's float64 input gradients from its float32 inputs and the
// float32 gradient it received, against the gradients it passed on; (2) whole replays of the
// forward and backward from the input and parameters, in float64 and in float64 rounded to float32
// after every op (a floor no float32 engine beats), against each parameter's float32 gradient
// (cosine and relative error). An op whose error stands out from others of its kind is where
// precision is lost.
// --export DIR: the traced graph, its inputs and our gradients, for tools/torch-replay.py (the same
// graph through PyTorch in float32 and float64: how far float32 PyTorch lands from float64).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backward, dropoutScale, forward, REFERENCE_OPS, size } from './f64-reference.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const load = (p) => import(join(root, p));
const { loadConfig } = await load('packages/config/dist/index.js');
const { buildModel, withoutPretrained } = await load('packages/models/dist/index.js');
const T = await load('packages/tensor/dist/index.js');

const args = process.argv.slice(2);
const flag = (name, withValue = false) => {
  const at = args.indexOf(name);
  if (at < 0) return withValue ? null : false;
  const [, value] = args.splice(at, withValue ? 2 : 1);
  return withValue ? value : true;
};
const exportDir = flag('--export', true);
const askedParam = flag('--param', true);
const gradMode = flag('--grad') || exportDir !== null;
const config = args[0] ?? 'configs/ocrnet/ocrnet_hrnetw18_cityscapes_1024x512_160k.yml';
const shape = args.length >= 5 ? args.slice(1, 5).map(Number) : [2, 3, 128, 256];
const mode = args[5] ?? 'train';
const numClasses = 19;

const device = await T.getDevice();
const block = { num_classes: numClasses, ...withoutPretrained(loadConfig(join(root, config)).model) };
T.manualSeed(1);
const model = buildModel(device, block);
if (mode === 'train') model.train();
else model.eval();
let seed = 7;
const uniform = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const x = T.tensor(
  device,
  Float32Array.from({ length: size(shape) }, () => uniform() * 2 - 1),
  shape,
);

const host = new Map();
const data = async (t) => {
  if (!host.has(t)) host.set(t, Float64Array.from(await t.data()));
  return host.get(t);
};
/** max |got − ref| / max |ref| */
const relError = (got, ref) => {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    worst = Math.max(worst, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return worst / (scale || 1);
};
const cosine = (p, q) => {
  let pq = 0;
  let pp = 0;
  let qq = 0;
  for (let i = 0; i < p.length; i++) {
    pq += p[i] * q[i];
    pp += p[i] * p[i];
    qq += q[i] * q[i];
  }
  return pp === 0 && qq === 0 ? 1 : pq / Math.sqrt(pp * qq);
};
const describe = (op) => {
  const g = op.attrs.geometry;
  const conv = g ? ` k${g.kh} s${g.sh} pad ${g.pt},${g.pl} in ${g.h}x${g.w}` : '';
  return `${op.op} ${op.output.shape.join('x')}${conv}`;
};
const paramNames = new Map(model.namedParameters().map(([name, t]) => [t, name]));

/** What an op needs beyond its inputs: running statistics, the dropout mask. */
async function extraOf(op) {
  const a = op.attrs;
  if (op.op === 'batchNorm2d' && !a.training)
    return { running: { mean: await data(a.runningMean), variance: await data(a.runningVar) } };
  if (op.op === 'dropout2d' || op.op === 'drop_path') {
    const planeFrom = op.op === 'dropout2d' ? 2 : 1;
    return {
      scale: dropoutScale(await data(op.inputs[0]), await data(op.output), op.inputs[0].shape, planeFrom),
    };
  }
  return {};
}

function printByType(rows) {
  const byType = new Map();
  for (const r of rows) byType.set(r.type, [...(byType.get(r.type) ?? []), r.rel]);
  for (const [type, rels] of byType) {
    const sorted = [...rels].sort((p, q) => p - q);
    console.log(
      `  ${type.padEnd(22)} n=${String(rels.length).padStart(4)} median ${sorted[Math.floor(sorted.length / 2)].toExponential(2)} max ${sorted.at(-1).toExponential(2)}`,
    );
  }
}

const heading = `${config} ${shape.join('x')} ${mode}`;
if (!gradMode) {
  const { ops } = T.noGrad(() => T.traceOps(() => model.forward(x)));
  const rows = [];
  const skipped = new Map();
  for (const [index, op] of ops.entries()) {
    if (!REFERENCE_OPS.has(op.op) || op.op === 'dropout2d') {
      // No float64 reference here (or random, as dropout): listed below.
      skipped.set(op.op, (skipped.get(op.op) ?? 0) + 1);
      continue;
    }
    const ins = await Promise.all(op.inputs.map(data));
    const ref = forward(
      op.op,
      ins,
      op.inputs.map((t) => [...t.shape]),
      op.attrs,
      await extraOf(op),
    );
    rows.push({ index, op, type: op.op, rel: relError(await data(op.output), ref) });
  }
  console.log(`${heading}: ${rows.length} ops audited`);
  if (skipped.size)
    console.log(
      `  not audited (no reference here): ${[...skipped].map(([op, n]) => `${op} ×${n}`).join(', ')}`,
    );
  printByType(rows);
  console.log('worst ops (max |f32 − f64| / max |f64|):');
  for (const r of [...rows].sort((p, q) => q.rel - p.rel).slice(0, 12))
    console.log(`  #${r.index} ${describe(r.op)}: ${r.rel.toExponential(2)}`);
  process.exit(0);
}

// --- gradients -------------------------------------------------------------------------------
const labelsHost = Int32Array.from({ length: shape[0] * shape[2] * shape[3] }, () =>
  Math.floor(uniform() * numClasses),
);
const labels = T.tensor(device, labelsHost, [shape[0], shape[2], shape[3]], 'i32');
const { result, ops } = T.traceOps(() => model.forward(x));
const heads = Array.isArray(result) ? result : [result];
// The op that produced each tensor (the outer one where ops nest), and the ops the heads need.
const producer = new Map(ops.map((op) => [op.output, op]));
const graph = new Set();
for (const stack = [...heads]; stack.length; ) {
  const op = producer.get(stack.pop());
  if (!op || graph.has(op)) continue;
  graph.add(op);
  stack.push(...op.inputs);
}
const order = ops.filter((op) => graph.has(op));
for (const op of order) await data(op.output);
for (const op of order) for (const t of op.inputs) await data(t);
// What each op needs beyond its inputs, read once for the export and every replay below.
const extras = new Map();
for (const op of order) extras.set(op, await extraOf(op));

// Snapshot each op's incoming gradient and the input gradients it returns (the engine frees or
// accumulates into them right after).
const seen = new Map();
for (const op of order) {
  const node = op.output.gradFn;
  if (!node) continue;
  const run = node.backward;
  node.backward = (g) => {
    const inputGrads = run(g);
    seen.set(op, { grad: g.data(), inputs: inputGrads.map((t) => t?.data() ?? null) });
    return inputGrads;
  };
}
const loss = heads.map((logits) => T.mean(T.pixelCrossEntropy(logits, labels))).reduce((p, q) => T.add(p, q));
T.backward(loss, { retainGraph: true });
console.log(`${heading}: loss ${(await loss.item()).toFixed(6)}, ${order.length} ops in the graph`);

if (exportDir) {
  await exportGraph(exportDir);
  process.exit(0);
}
const missing = [...new Set(order.filter((op) => !REFERENCE_OPS.has(op.op)).map((op) => op.op))];
if (missing.length)
  throw new Error(`f64-audit --grad: no float64 reference for ${missing.join(', ')} (--export works)`);

/**
 * The traced graph for tools/torch-replay.py: graph.json (ops with tensor ids and attributes, the
 * leaves, parameter names, heads) and tensors.bin (float32 values of the leaves, dropout scales,
 * labels as float32, our parameter gradients), each entry's byte offset in graph.json.
 */
async function exportGraph(dir) {
  const ids = new Map();
  const idOf = (t) => {
    if (!ids.has(t)) ids.set(t, ids.size);
    return ids.get(t);
  };
  const chunks = [];
  let offset = 0;
  const put = (values) => {
    const bytes = Buffer.from(Float32Array.from(values).buffer);
    chunks.push(bytes);
    offset += bytes.length;
    return { offset: offset - bytes.length, length: values.length };
  };
  const produced = new Set(order.map((op) => op.output));
  const leaves = new Map();
  const leaf = (t) => {
    if (!produced.has(t) && !leaves.has(idOf(t)))
      leaves.set(idOf(t), { shape: [...t.shape], name: paramNames.get(t) ?? null, ...put(host.get(t)) });
    return idOf(t);
  };
  const graphOps = [];
  for (const op of order) {
    const a = op.attrs;
    const attrs = { ...a };
    if (op.op === 'batchNorm2d') {
      const { running } = extras.get(op); // eval only
      attrs.runningMean = running ? leaf(a.runningMean) : null;
      attrs.runningVar = running ? leaf(a.runningVar) : null;
    }
    if (op.op === 'dropout2d' || op.op === 'drop_path') attrs.scale = put(extras.get(op).scale);
    graphOps.push({
      op: op.op,
      inputs: op.inputs.map(leaf),
      output: idOf(op.output),
      shape: [...op.output.shape],
      attrs,
    });
  }
  const grads = [];
  for (const [name, p] of model.namedParameters())
    if (p.grad) grads.push({ name, id: idOf(p), ...put(await p.grad.data()) });
  const graph = {
    config,
    shape,
    ops: graphOps,
    leaves: Object.fromEntries(leaves),
    input: idOf(x),
    heads: heads.map(idOf),
    headValues: heads.map((h) => put(host.get(h))),
    labels: { shape: [...labels.shape], ...put(labelsHost) },
    grads,
  };
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tensors.bin'), Buffer.concat(chunks));
  writeFileSync(join(dir, 'graph.json'), JSON.stringify(graph));
  console.log(
    `exported ${graphOps.length} ops, ${leaves.size} leaves to ${dir} (python3 tools/torch-replay.py ${dir})`,
  );
}

// (1) op by op
const local = [];
for (const [index, op] of order.entries()) {
  const snap = seen.get(op);
  if (!snap) continue;
  const ins = op.inputs.map((t) => host.get(t));
  const s = op.inputs.map((t) => [...t.shape]);
  const grad = Float64Array.from(await snap.grad);
  const refs = backward(op.op, ins, s, op.attrs, host.get(op.output), grad, extras.get(op));
  for (const [i, got] of snap.inputs.entries()) {
    if (!got || !refs[i] || !op.inputs[i].requiresGrad) continue;
    const role = paramNames.get(op.inputs[i]) ?? `input ${i}`;
    local.push({
      index,
      op,
      type: `${op.op}/${paramNames.has(op.inputs[i]) ? 'param' : `d${i}`}`,
      role,
      rel: relError(Float64Array.from(await got), refs[i]),
    });
  }
}
console.log("(1) each op's backward from the float32 gradient it received, max |f32 − f64| / max |f64|:");
printByType(local);
for (const r of [...local].sort((p, q) => q.rel - p.rel).slice(0, 15))
  console.log(`  #${r.index} ${describe(r.op)} → ${r.role}: ${r.rel.toExponential(2)}`);

// (2) whole-model replays from the input and the parameters: in float64, and in float64 rounded to
// float32 after every op (each op's result exact, then stored as float32: the best any float32
// engine can do, the floor that the float32 gradients are judged against).
const toF32 = (v) => Float64Array.from(Float32Array.from(v));
function replay(round) {
  const value = new Map();
  const current = (t) => value.get(t) ?? host.get(t);
  for (const op of order) {
    const s = op.inputs.map((t) => [...t.shape]);
    value.set(op.output, round(forward(op.op, op.inputs.map(current), s, op.attrs, extras.get(op))));
  }
  const grads = new Map();
  for (const logits of heads) {
    // d(mean CE)/d logits = (softmax − onehot) / pixels
    const [n, c] = logits.shape;
    const hw = logits.size / (n * c);
    const z = value.get(logits);
    const g = new Float64Array(z.length);
    for (let b = 0; b < n; b++)
      for (let p = 0; p < hw; p++) {
        let m = -Infinity;
        for (let k = 0; k < c; k++) m = Math.max(m, z[(b * c + k) * hw + p]);
        let sum = 0;
        for (let k = 0; k < c; k++) sum += Math.exp(z[(b * c + k) * hw + p] - m);
        for (let k = 0; k < c; k++) {
          const at = (b * c + k) * hw + p;
          g[at] = (Math.exp(z[at] - m) / sum - (labelsHost[b * hw + p] === k ? 1 : 0)) / (n * hw);
        }
      }
    grads.set(logits, round(g));
  }
  for (const op of [...order].reverse()) {
    const g = grads.get(op.output);
    if (!g) continue;
    const s = op.inputs.map((t) => [...t.shape]);
    const refs = backward(
      op.op,
      op.inputs.map(current),
      s,
      op.attrs,
      value.get(op.output),
      g,
      extras.get(op),
    );
    op.inputs.forEach((t, i) => {
      if (!refs[i] || !t.requiresGrad) return;
      const previous = grads.get(t);
      grads.set(t, round(previous ? refs[i].map((v, k) => v + previous[k]) : refs[i]));
    });
  }
  return { value, grads };
}
const exact = replay((v) => v);
const floor = replay(toF32);
const params = [];
const vanishing = [];
for (const [name, p] of model.namedParameters()) {
  const ref = exact.grads.get(p);
  if (!ref || !p.grad) continue;
  const got = Float64Array.from(await p.grad.data());
  const norm = (v) => Math.sqrt(v.reduce((sum, e) => sum + e * e, 0));
  // Zero in exact arithmetic (a conv bias right before a training-mode BatchNorm): what any
  // float32 engine returns there is rounding noise; its cosine means nothing.
  if (norm(ref) < 1e-4 * norm(got)) {
    vanishing.push(name);
    continue;
  }
  const floorCos = cosine(floor.grads.get(p), ref);
  params.push({ name, cos: cosine(got, ref), floorCos, rel: relError(got, ref) });
}
const logitRel = (values) => heads.map((h) => relError(values(h), exact.value.get(h)).toExponential(2));
console.log('(2) whole-model replay against float64: logits max |Δ| / max |f64|');
console.log(
  `  ours ${logitRel((h) => host.get(h)).join(', ')}; float32 floor ${logitRel((h) => floor.value.get(h)).join(', ')}`,
);
console.log(
  `  ${params.length} parameter gradients, and ${vanishing.length} zero in exact arithmetic${vanishing.length ? ` (${vanishing[0]}, …)` : ''}`,
);
const count = (key) => params.filter((p) => p[key] < 0.9995).length;
console.log(`  cosine < 0.9995: ours ${count('cos')}, float32 floor ${count('floorCos')}`);
const show = (p) =>
  `  ${p.name}: cosine ${p.cos.toFixed(6)} (floor ${p.floorCos.toFixed(6)}), rel ${p.rel.toExponential(2)}`;
console.log('  worst by cosine:');
for (const p of [...params].sort((a, b) => a.cos - b.cos).slice(0, 10)) console.log(show(p));
const excess = (p) => (1 - p.cos) / Math.max(1 - p.floorCos, 1e-12);
for (const p of params.filter((q) => q.name === askedParam)) console.log(`  asked for:\n${show(p)}`);
console.log('  furthest beyond the float32 floor, (1 − cosine) / (1 − floor cosine):');
for (const p of [...params].sort((a, b) => excess(b) - excess(a)).slice(0, 10))
  console.log(`${show(p)}, ×${excess(p).toFixed(1)}`);
process.exit(0);
