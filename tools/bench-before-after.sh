#!/usr/bin/env bash
# Benchmarks this checkout against another commit's build on the same machine, in one session:
# the two builds run interleaved (A B A B …) so that a shared machine's drift hits both, and
# `segtrain-bench compare` writes the ratio B / A (B = this checkout) from the averaged runs.
#
#   bash tools/bench-before-after.sh [REF] [ROUNDS]
#     REF     the commit to compare against (default HEAD~1); built once in .bench-base/<sha>/
#     ROUNDS  interleaved rounds (default 2)
#
# Writes bench-results/before-after-<stamp>/: every run's reports under A/ and B/, one ratio
# table per suite, and README.md naming both commits. Suites: kernels (GEMM, conv, …), models
# (training step of PP-LiteSeg-T and SegFormer-B0 at the demo's batch) and train (the demo
# config's full step). This checkout must be built (pnpm build) and REF must have these suites.
set -euo pipefail

REF=${1:-HEAD~1}
ROUNDS=${2:-2}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

SHA=$(git rev-parse --short "$REF")
HEAD_SHA=$(git rev-parse --short HEAD)
DIRTY=$(git status --porcelain --untracked-files=no | grep -q . && echo ' + uncommitted changes' || true)
BASE=$ROOT/.bench-base/$SHA
if [[ ! -f $BASE/.built ]]; then
  echo "==> building $SHA in $BASE (once)"
  rm -rf "$BASE"
  git worktree prune
  git worktree add --force --detach "$BASE" "$SHA" >/dev/null
  (cd "$BASE" && pnpm install --frozen-lockfile --prefer-offline >/dev/null && pnpm build >/dev/null)
  touch "$BASE/.built"
fi

STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
OUT=$ROOT/bench-results/before-after-$STAMP
mkdir -p "$OUT/A" "$OUT/B"
DEMO=configs/demo/pp_liteseg_stdc1_demo_128x256.yml
SUITES=(kernels models train)
suite_args() {
  case $1 in
    # A step or a small kernel varies by ±10 % between identical runs on this shared machine: 15 reps a side.
    kernels) echo "kernels --no-tfjs --reps 15" ;;
    models) echo "models --input 4x3x64x128 --models pp-liteseg,segformer --reps 15" ;;
    train) echo "train --config $DEMO --input 4x3x64x128 --reps 15" ;;
  esac
}

for ((round = 1; round <= ROUNDS; round++)); do
  for suite in "${SUITES[@]}"; do
    for side in A B; do
      tree=$([[ $side == A ]] && echo "$BASE" || echo "$ROOT")
      echo "==> round $round/$ROUNDS, $suite, $side ($([[ $side == A ]] && echo "$SHA" || echo "$HEAD_SHA"))"
      # shellcheck disable=SC2046
      (cd "$tree" && node apps/bench/dist/bin.js $(suite_args "$suite") --out "$OUT/$side/$suite-$round" | tail -n 1)
    done
  done
done

for suite in "${SUITES[@]}"; do
  runs() { find "$OUT/$1" -path "*/$suite-*" -name '*.json' | sort | paste -sd, -; }
  node apps/bench/dist/bin.js compare "$(runs A)" "$(runs B)" --out "$OUT/$suite.md" >/dev/null
done

{
  echo "# Before / after: $HEAD_SHA$DIRTY (B) against $SHA (A)"
  echo
  echo "Run $STAMP on this machine, $ROUNDS interleaved round(s) per suite (A then B each time)."
  echo "Ratios are B / A of the runs' means: below 1 in ms and above 1 in rates mean B is faster."
  echo
  for suite in "${SUITES[@]}"; do echo "- \`$suite.md\`: \`segtrain-bench $(suite_args "$suite")\`"; done
  echo
  for suite in "${SUITES[@]}"; do
    echo "## $suite"
    echo
    sed -n '/^| case/,$p' "$OUT/$suite.md"
    echo
  done
} >"$OUT/README.md"
echo "==> wrote $OUT/README.md"
