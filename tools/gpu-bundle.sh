#!/usr/bin/env bash
# Packs what a GPU machine without Node needs to run segtrain: this machine's Node binary, the built
# workspace (dist/, package.json files, configs) and its runtime node_modules (Dawn's dawn.node for
# linux-x64 only, sharp, zeromq; no tfjs, biome, turbo, typescript, esbuild, vite/vitest, and no
# onnxruntime: export and ONNX predict are not measured there), as .gpu/segtrain-gpu.tar.xz. The
# device tool carries at most 64 MiB: the script stops above that. tools/gpu-run.sh unpacks it there and runs the GPU measurements.
#
#   bash tools/gpu-bundle.sh        # after `pnpm build`
#
# With the `device` tool: run `bash tools/gpu-run.sh` with carry [".gpu"] (FIELD-NOTES: 41 MB).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[[ -f apps/cli/dist/bin.js && -f apps/bench/dist/bin.js ]] || {
  echo "error: build first (pnpm build): apps/cli/dist or apps/bench/dist is missing" >&2
  exit 1
}
[[ $(uname -m) == x86_64 ]] || {
  echo "error: the bundle carries this machine's Node and native addons; build it on x86-64 Linux" >&2
  exit 1
}

mkdir -p .gpu
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin"
cp "$(command -v node)" "$STAGE/bin/node"
git rev-parse --short HEAD >"$STAGE/COMMIT"

# Development-only packages and other platforms' binaries stay behind.
EXCLUDES=(
  --exclude='node_modules/.pnpm/@tensorflow*' --exclude='node_modules/.pnpm/@biomejs*'
  --exclude='node_modules/.pnpm/turbo*' --exclude='node_modules/.pnpm/@turbo*'
  --exclude='node_modules/.pnpm/typescript@*' --exclude='node_modules/.pnpm/*esbuild*'
  --exclude='node_modules/.pnpm/*rolldown*' --exclude='node_modules/.pnpm/vite*'
  --exclude='node_modules/.pnpm/@vitest*' --exclude='node_modules/.pnpm/core-js*'
  --exclude='node_modules/.pnpm/@oxc*' --exclude='node_modules/.pnpm/tsx@*'
  --exclude='node_modules/.pnpm/onnxruntime*'
  --exclude='node_modules/.pnpm/webgpu@*/node_modules/webgpu/dist/darwin*'
  --exclude='node_modules/.pnpm/webgpu@*/node_modules/webgpu/dist/win32*'
  --exclude='node_modules/.pnpm/webgpu@*/node_modules/webgpu/dist/linux-arm64'
  --exclude='*.d.ts' --exclude='*.map' --exclude='*/src/*.ts' --exclude='*/test'
  --exclude='.turbo' --exclude='.test-results'
)
WORKSPACE=(package.json configs node_modules)
for dir in apps/* packages/*; do
  WORKSPACE+=("$dir/package.json" "$dir/dist")
  [[ -e $dir/node_modules ]] && WORKSPACE+=("$dir/node_modules")
done

echo "==> packing $(cat "$STAGE/COMMIT") into .gpu/segtrain-gpu.tar.xz"
tar -cf - "${EXCLUDES[@]}" "${WORKSPACE[@]}" -C "$STAGE" bin COMMIT | xz -6 -T0 >.gpu/segtrain-gpu.tar.xz.tmp
mv .gpu/segtrain-gpu.tar.xz.tmp .gpu/segtrain-gpu.tar.xz
echo "==> $(du -h .gpu/segtrain-gpu.tar.xz | cut -f1) .gpu/segtrain-gpu.tar.xz"
MAX_BYTES=$((64 * 1024 * 1024))
if (($(stat -c %s .gpu/segtrain-gpu.tar.xz) > MAX_BYTES)); then
  echo "error: the bundle is over the device tool's 64 MiB carry limit: exclude what grew (du -sh node_modules/.pnpm/*)" >&2
  exit 1
fi
