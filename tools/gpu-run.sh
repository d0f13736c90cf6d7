#!/usr/bin/env bash
# On a GPU machine without Node (the `device` tool's H100/H200): unpacks the bundle that
# tools/gpu-bundle.sh made (.gpu/segtrain-gpu.tar.xz), then measures there and writes to $OUT
# (default ./gpu-results): doctor.txt, log.txt, autotune.json and gpu-reports.tar (every suite's .md/.json/.svg;
# the device tool returns at most 8 files).
#   - segtrain doctor (the adapter, its limits and features);
#   - segtrain-bench kernels: GEMM 512³…6144³ and the conv cases;
#   - segtrain-bench models --profile at 4×3×512×1024 (the issue's PyTorch comparison) and 4×3×64×128;
#   - segtrain-bench train: the three seed configs' full step at 4×3×512×1024.
# Kernels are autotuned (on by default on a GPU): the first suite tunes the GEMM shape classes it
# meets, the cache ($OUT/autotune.json, every candidate's time per class) serves the later suites
# and comes back; GEMM is also run untuned (SEGTRAIN_AUTOTUNE=0) as the same-session baseline, and
# the small-input models with Dawn's own busy polling (SEGTRAIN_GPU_POLL=spin) as the baseline of
# the polite waits (packages/tensor/README.md, "Waiting for the GPU").
#
#   device run: bash tools/gpu-run.sh   (carry [".gpu"]; 3–5 minutes on an H200 untuned, plus the
#   first tuning of each shape class)
#   SEGTRAIN_GPU_QUICK=1 bash tools/gpu-run.sh   # small sizes: a smoke run of the bundle here
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUNDLE=$PWD/.gpu/segtrain-gpu.tar.xz
OUT=${OUT:-$PWD/gpu-results}
APP=${SEGTRAIN_GPU_DIR:-/tmp/segtrain-gpu}
[[ -f $BUNDLE ]] || {
  echo "error: $BUNDLE is missing: run bash tools/gpu-bundle.sh here first, and carry .gpu" >&2
  exit 1
}

rm -rf "$APP"
mkdir -p "$APP" "$OUT"
xz -dc "$BUNDLE" | tar -xf - -C "$APP"
# The Vulkan loader, when the image lacks it (the device tool's README: debs under .gl/).
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 && compgen -G '.gl/*.deb' >/dev/null; then
  for deb in .gl/*.deb; do dpkg -x "$deb" /; done
  ldconfig
fi
NVIDIA_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [[ -z ${VK_DRIVER_FILES:-} && -f $NVIDIA_ICD ]]; then export VK_DRIVER_FILES=$NVIDIA_ICD; fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
export SEGTRAIN_AUTOTUNE_CACHE=$OUT/autotune.json
export PATH=$APP/bin:$PATH
cd "$APP"
echo "bundle of $(cat COMMIT), node $(node --version), $(nproc) cores" | tee "$OUT/log.txt"

node apps/cli/dist/bin.js doctor 2>&1 | tee "$OUT/doctor.txt"
REPORTS=$APP/reports
bench() {
  echo "==> segtrain-bench $*" | tee -a "$OUT/log.txt"
  # A failing suite is logged and the rest still run.
  node apps/bench/dist/bin.js "$@" --out "$REPORTS" 2>&1 | grep -v '^Warning: max' | tee -a "$OUT/log.txt" || true
  # The reports so far, after every suite: a run cut off at the device's time limit keeps them.
  [[ -d $REPORTS ]] && tar -cf "$OUT/gpu-reports.tar" -C "$APP" reports
}
SEEDS=configs/pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml
SEEDS+=,configs/segformer/segformer_b0_cityscapes_1024x1024_160k.yml
SEEDS+=,configs/ocrnet/ocrnet_hrnetw18_cityscapes_1024x512_160k.yml
if [[ -n ${SEGTRAIN_GPU_QUICK:-} ]]; then
  bench kernels --no-tfjs --quick --reps 2
  bench models --quick --models liteseg --profile --reps 2
  bench train --config "${SEEDS%%,*}" --input 1x3x64x128 --reps 2
else
  SEGTRAIN_AUTOTUNE=0 bench kernels --no-tfjs --gemm 1024,2048,4096 --reps 5
  bench kernels --no-tfjs --gemm 512,1024,1536,2048,3072,4096,6144 --reps 5
  bench models --input 4x3x512x1024 --profile --reps 5
  bench models --input 4x3x64x128 --reps 5
  SEGTRAIN_GPU_POLL=spin bench models --input 4x3x64x128 --reps 5
  bench train --config "$SEEDS" --input 4x3x512x1024 --reps 5
fi
echo "==> $OUT: doctor.txt, log.txt, autotune.json, gpu-reports.tar ($(tar -tf "$OUT/gpu-reports.tar" | grep -c '\.md$') reports)"
