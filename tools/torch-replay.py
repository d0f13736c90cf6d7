"""Replays a graph exported by `node tools/f64-audit.mjs --export DIR` through PyTorch (CPU), in
float32 and in float64, from the same inputs and parameters, and compares each parameter's
gradient with the float64 one: PyTorch float32's, ours (exported), and how the two rank.

    python3 tools/torch-replay.py DIR [PARAMETER ...]   (needs PyTorch: apt-get install python3-torch)
"""
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

root = Path(sys.argv[1])
graph = json.loads((root / "graph.json").read_text())
raw = torch.frombuffer(bytearray((root / "tensors.bin").read_bytes()), dtype=torch.float32)


def stored(entry, shape=None):
    values = raw[entry["offset"] // 4 : entry["offset"] // 4 + entry["length"]].clone()
    return values.reshape(shape if shape is not None else entry.get("shape", [-1]))


def conv(x, w, b, g):
    # Our padding may be asymmetric (Paddle's 'same'): pad explicitly, then convolve unpadded.
    pb = (g["hout"] - 1) * g["sh"] + (g["kh"] - 1) * g["dh"] + 1 - g["h"] - g["pt"]
    pr = (g["wout"] - 1) * g["sw"] + (g["kw"] - 1) * g["dw"] + 1 - g["w"] - g["pl"]
    x = F.pad(x, (g["pl"], pr, g["pt"], pb))
    return F.conv2d(x, w, b, (g["sh"], g["sw"]), 0, (g["dh"], g["dw"]), g["groups"])


def run(op, ins, a, values, dtype):
    kind = op["op"]
    if kind == "conv2d":
        return conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a["geometry"])
    if kind == "batchNorm2d":
        mean = None if a["training"] else values[a["runningMean"]].reshape(-1).to(dtype)
        var = None if a["training"] else values[a["runningVar"]].reshape(-1).to(dtype)
        y = F.batch_norm(ins[0], mean, var, ins[1].reshape(-1), ins[2].reshape(-1), a["training"], 0.0, a["eps"])
        return F.relu(y) if a["activation"] == "relu" else y
    if kind == "relu":
        return F.relu(ins[0])
    if kind == "add":
        return ins[0] + ins[1]
    if kind == "affine":
        return ins[0] * a["scalars"][0] + a["scalars"][1]
    if kind == "resizeBilinear":
        return F.interpolate(ins[0], size=a["size"], mode="bilinear", align_corners=a["alignCorners"])
    if kind == "reshape":
        return ins[0].reshape(op["shape"])
    if kind == "transpose":
        return ins[0].permute(a["perm"])
    if kind == "softmax":
        return F.softmax(ins[0], a["axis"])
    if kind == "matmul":
        return torch.matmul(ins[0], ins[1])
    if kind == "concat":
        return torch.cat(ins, a["axis"])
    if kind in ("dropout2d", "drop_path"):
        return ins[0] * stored(a["scale"], ins[0].shape).to(dtype)
    if kind == "avg_pool2d":
        g = a["geometry"]
        window = ((g["kh"], g["kw"]), (g["sh"], g["sw"]), (g["padTop"], g["padLeft"]))
        return F.avg_pool2d(ins[0], *window, count_include_pad=not a["exclusive"])
    if kind == "adaptive_avg_pool2d":
        return F.adaptive_avg_pool2d(ins[0], (a["geometry"]["outH"], a["geometry"]["outW"]))
    if kind == "mean":
        return ins[0].mean(dim=a["axes"], keepdim=a["keepDims"])
    if kind == "max":
        return torch.amax(ins[0], dim=a["axes"], keepdim=a["keepDims"])
    if kind == "sigmoid":
        return torch.sigmoid(ins[0])
    if kind == "gelu":
        return F.gelu(ins[0])
    if kind == "mul":
        return ins[0] * ins[1]
    if kind == "sub":
        return ins[0] - ins[1]
    if kind == "slice":
        return ins[0].narrow(a["axis"], a["start"], a["length"])
    if kind == "layerNorm":
        return F.layer_norm(ins[0], ins[1].shape, ins[1], ins[2], a["eps"])
    if kind == "linear":
        y = torch.matmul(ins[0], ins[1]) + (ins[2] if len(ins) > 2 else 0)
        return {"none": y, "relu": F.relu(y), "gelu": F.gelu(y)}[a["activation"]]
    raise SystemExit(f"torch-replay: no rule for {kind}")


def replay(dtype, input_scale=1.0):
    values = {}
    params = {}
    for key, entry in graph["leaves"].items():
        t = stored(entry).to(dtype)
        if int(key) == graph["input"]:
            t = t * input_scale
        if entry["name"] is not None:
            t.requires_grad_(True)
            params[entry["name"]] = t
        values[int(key)] = t
    for op in graph["ops"]:
        values[op["output"]] = run(op, [values[i] for i in op["inputs"]], op["attrs"], values, dtype)
    labels = stored(graph["labels"]).long()
    heads = [values[h] for h in graph["heads"]]
    loss = sum(F.cross_entropy(h, labels) for h in heads)
    loss.backward()
    return loss.item(), heads, params


loss64, heads64, params64 = replay(torch.float64)
loss32, heads32, params32 = replay(torch.float32)
# The input moved by one float32 rounding step (2⁻²⁴ relative), in float64: a gradient that turns
# under that is ill-posed at float32 precision (no float32 engine can be held to it).
_, _, nudged64 = replay(torch.float64, 1 + 2**-24)


def rel(got, ref):
    return ((got.double() - ref).abs().max() / ref.abs().max()).item()


def cosine(got, ref):
    return F.cosine_similarity(got.double().reshape(1, -1), ref.reshape(1, -1)).item()


print(f"{graph['config']} {'x'.join(map(str, graph['shape']))}: loss float64 {loss64:.6f}, float32 {loss32:.6f}")
ours_heads = [stored(v, h.shape) for v, h in zip(graph["headValues"], heads64)]
print(
    "logits max |Δ| / max |f64|: PyTorch float32 "
    + ", ".join(f"{rel(h32.detach(), h64.detach()):.2e}" for h32, h64 in zip(heads32, heads64))
    + "; ours "
    + ", ".join(f"{rel(o, h64.detach()):.2e}" for o, h64 in zip(ours_heads, heads64))
)
# Each op alone, as `node tools/f64-audit.mjs` (forward) measures ours: PyTorch float32 against
# float64 on the same float32 inputs (those of the float32 replay).
local = {}
with torch.no_grad():
    values = {}
    for key, entry in graph["leaves"].items():
        values[int(key)] = stored(entry)
    for op in graph["ops"]:
        ins = [values[i] for i in op["inputs"]]
        out32 = run(op, ins, op["attrs"], values, torch.float32)
        out64 = run(op, [t.double() for t in ins], op["attrs"], values, torch.float64)
        values[op["output"]] = out32
        local.setdefault(op["op"], []).append(rel(out32, out64) if out64.abs().max() > 0 else 0.0)
print("each op's forward, PyTorch float32, max |f32 − f64| / max |f64|:")
for kind, errors in local.items():
    errors.sort()
    print(f"  {kind:16} n={len(errors):4} median {errors[len(errors) // 2]:.2e} max {errors[-1]:.2e}")

rows = []
vanishing = []
ill_posed = []
for entry in graph["grads"]:
    ref = params64[entry["name"]].grad
    ours = stored(entry, ref.shape)
    torch32 = params32[entry["name"]].grad
    if ref.norm() < 1e-4 * ours.double().norm():
        vanishing.append(entry["name"])  # zero in exact arithmetic (a conv bias before a training-mode BatchNorm)
    elif cosine(nudged64[entry["name"]].grad, ref) < 0.9999:
        ill_posed.append(entry["name"])
    else:
        rows.append((entry["name"], cosine(ours, ref), cosine(torch32, ref)))
print(f"left out: {len(vanishing)} gradients zero in exact arithmetic, {len(ill_posed)} ill-posed at float32 precision")
for name in ill_posed:
    print(f"  ill-posed: {name}")
worst = lambda i: sum(1 for r in rows if r[i] < 0.9995)
print(f"{len(rows)} parameter gradients; cosine < 0.9995: ours {worst(1)}, PyTorch float32 {worst(2)}")
print("worst by our cosine (ours | PyTorch float32):")
for name, ours, theirs in sorted(rows, key=lambda r: r[1])[:10]:
    print(f"  {name}: {ours:.6f} | {theirs:.6f}")
for name, ours, theirs in rows:
    if name in sys.argv[2:]:
        print(f"asked for: {name}: {ours:.6f} | {theirs:.6f}")
print("worst by PyTorch float32's cosine (ours | PyTorch float32):")
for name, ours, theirs in sorted(rows, key=lambda r: r[2])[:10]:
    print(f"  {name}: {ours:.6f} | {theirs:.6f}")
