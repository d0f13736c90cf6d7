#!/usr/bin/env bash
# segtrain quickstart: bootstrap a checkout on a fresh machine (or re-run on an existing one).
#
#   bash tools/quickstart.sh setup   # toolchain, dependencies, build, WebGPU adapter, `segtrain` on PATH
#   bash tools/quickstart.sh demo    # setup, then run the demo
#   bash tools/quickstart.sh test    # setup, then run every check
#
# Needs Node.js >= 20 with npm. Safe to run repeatedly.
set -euo pipefail

PNPM_VERSION=12.4.2
NODE_MIN_MAJOR=20
BACKPORTS_FILE=/etc/apt/sources.list.d/segtrain-bookworm-backports.sources
GPU_PACKAGES=(mesa-vulkan-drivers libvulkan1)

step() { printf '==> %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

usage() {
  echo "usage: bash tools/quickstart.sh demo|test|setup" >&2
  exit 64
}

MODE=${1:-}
case "$MODE" in
  demo | test | setup) ;;
  *) usage ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)

# Run a command quietly; show its output only when it fails.
quiet() {
  local log status=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || status=$?
  if [[ $status -ne 0 ]]; then
    echo "--- output of: $* (exit $status)" >&2
    cat "$log" >&2
    echo "---" >&2
  fi
  rm -f "$log"
  return "$status"
}

# --- 1. Node.js -------------------------------------------------------------------------------
check_node() {
  step "checking Node.js (need >= ${NODE_MIN_MAJOR})"
  if ! command -v node >/dev/null 2>&1; then
    cat >&2 <<EOF
error: Node.js is not installed.
Install Node.js ${NODE_MIN_MAJOR} LTS or newer, with npm (from your OS packages, nvm, or the
official Node.js distributions), then re-run: bash tools/quickstart.sh ${MODE}
EOF
    exit 1
  fi
  local version major
  version=$(node -p 'process.versions.node')
  major=${version%%.*}
  if ((major < NODE_MIN_MAJOR)); then
    cat >&2 <<EOF
error: Node.js ${version} is too old; segtrain needs Node.js ${NODE_MIN_MAJOR} or newer.
Install Node.js ${NODE_MIN_MAJOR} LTS or newer, with npm (from your OS packages, nvm, or the
official Node.js distributions), then re-run: bash tools/quickstart.sh ${MODE}
EOF
    exit 1
  fi
  if ! command -v npm >/dev/null 2>&1; then
    die "npm is missing (it normally ships with Node.js); install npm, then re-run"
  fi
}

# --- 2. pnpm (never through corepack) -----------------------------------------------------------
pnpm_version() {
  local bin
  bin=$(command -v pnpm 2>/dev/null) || return 1
  # A corepack shim would download pnpm itself: treat it as "no pnpm".
  case "$(readlink -f "$bin" 2>/dev/null || echo "$bin")" in
    *corepack*) return 1 ;;
  esac
  COREPACK_ENABLE_STRICT=0 pnpm --version 2>/dev/null
}

ensure_pnpm() {
  step "ensuring pnpm ${PNPM_VERSION}"
  export COREPACK_ENABLE_STRICT=0
  if [[ "$(pnpm_version || true)" == "$PNPM_VERSION" ]]; then
    return 0
  fi
  step "installing pnpm ${PNPM_VERSION} with npm"
  if quiet npm install -g "pnpm@${PNPM_VERSION}"; then
    hash -r
    # The global prefix may not be on PATH (custom npm prefix).
    local prefix
    prefix=$(npm prefix -g 2>/dev/null || true)
    if [[ "$(pnpm_version || true)" != "$PNPM_VERSION" && -n "$prefix" ]]; then
      export PATH="$prefix/bin:$PATH"
      hash -r
    fi
    if [[ "$(pnpm_version || true)" == "$PNPM_VERSION" ]]; then
      return 0
    fi
  fi
  # Fallback: run pnpm through npx. A shim on PATH (not just a shell function) so that the tools
  # pnpm starts (turbo, nested scripts) find the same pnpm.
  step "npm install -g failed; using pnpm ${PNPM_VERSION} through npx"
  local shim_dir="${TMPDIR:-/tmp}/segtrain-pnpm-shim"
  mkdir -p "$shim_dir"
  cat >"$shim_dir/pnpm" <<EOF
#!/bin/sh
exec npx -y pnpm@${PNPM_VERSION} "\$@"
EOF
  chmod +x "$shim_dir/pnpm"
  export PATH="$shim_dir:$PATH"
  hash -r
  [[ "$(pnpm --version 2>/dev/null || true)" == "$PNPM_VERSION" ]] ||
    die "could not run pnpm ${PNPM_VERSION}; install it by hand: npm install -g pnpm@${PNPM_VERSION}"
}

# --- 4. dependencies and build -----------------------------------------------------------------
install_and_build() {
  if [[ -f pnpm-lock.yaml || "${CI:-}" == "true" ]]; then
    step "installing dependencies (pnpm install --frozen-lockfile)"
    pnpm install --frozen-lockfile
  else
    step "installing dependencies (pnpm install; no lockfile yet)"
    pnpm install
  fi
  step "building (pnpm build)"
  pnpm build
}

# --- 5. WebGPU adapter -------------------------------------------------------------------------
# Prints the adapter line; Dawn's stderr (warnings, reasons) is shown only when no adapter is found.
probe_adapter() {
  local log status=0
  log=$(mktemp)
  node tools/probe-adapter.mjs 2>"$log" || status=$?
  ((status == 0)) || cat "$log" >&2
  rm -f "$log"
  return "$status"
}

# "ID:VERSION_CODENAME" from /etc/os-release, e.g. "debian:bookworm".
os_id() {
  # shellcheck disable=SC1091
  (. /etc/os-release 2>/dev/null && echo "${ID:-}:${VERSION_CODENAME:-}") || echo ":"
}

apt_source_files() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && echo "$f"
  done
  return 0
}

has_backports_source() {
  local f
  while IFS= read -r f; do
    grep -Eqs '^[^#]*bookworm-backports' "$f" && return 0
  done < <(apt_source_files)
  return 1
}

# Print a deb822 stanza (Types/URIs/Components/Signed-By) for bookworm-backports, derived from the
# machine's own bookworm source. Prints nothing if none is found.
derive_backports_stanza() {
  local stanza=''
  shopt -s nullglob
  local deb822=(/etc/apt/sources.list.d/*.sources)
  shopt -u nullglob
  if ((${#deb822[@]})); then
    stanza=$(awk '
      function flush() {
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && suites ~ /(^|[ \t])bookworm([ \t]|$)/ &&
            enabled !~ /^[ \t]*(no|false)[ \t]*$/ && uris != "") {
          n = split(uris, u, /[ \t]+/); ok = 1
          for (i = 1; i <= n; i++) { x = u[i]; sub(/\/+$/, "", x); if (x ~ /-security$/) ok = 0 }
          if (ok) {
            printf "Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\n", uris
            if (signed != "") printf "Signed-By:%s\n", signed
            found = 1; exit
          }
        }
        types = uris = suites = signed = enabled = ""; field = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { if (field == "signed-by") signed = signed "\n" $0; next }
      {
        name = tolower(substr($0, 1, index($0, ":") - 1)); value = substr($0, index($0, ":") + 1)
        field = name
        if (name == "types") types = value
        else if (name == "uris") { uris = value; gsub(/^[ \t]+|[ \t]+$/, "", uris) }
        else if (name == "suites") suites = value
        else if (name == "signed-by") signed = value
        else if (name == "enabled") enabled = value
      }
      END { if (!found) flush() }
    ' "${deb822[@]}")
  fi
  if [[ -z "$stanza" ]]; then
    # One-line format: deb [options] URI bookworm components...
    local -a lists=()
    [[ -f /etc/apt/sources.list ]] && lists+=(/etc/apt/sources.list)
    shopt -s nullglob
    lists+=(/etc/apt/sources.list.d/*.list)
    shopt -u nullglob
    if ((${#lists[@]})); then
      stanza=$(awk '
        /^[ \t]*deb[ \t]/ {
          line = $0; opts = ""
          if (match(line, /\[[^]]*\]/)) { opts = substr(line, RSTART + 1, RLENGTH - 2); line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH) }
          n = split(line, w, /[ \t]+/); j = 0
          for (i = 1; i <= n; i++) if (w[i] != "") a[++j] = w[i]
          uri = a[2]; suite = a[3]; x = uri; sub(/\/+$/, "", x)
          if (suite == "bookworm" && x !~ /-security$/) {
            printf "Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\n", uri
            m = split(opts, o, /[ \t]+/)
            for (i = 1; i <= m; i++) if (o[i] ~ /^signed-by=/) { sub(/^signed-by=/, "", o[i]); printf "Signed-By: %s\n", o[i] }
            exit
          }
        }
      ' "${lists[@]}")
    fi
  fi
  printf '%s' "$stanza"
}

print_manual_gpu_help() {
  local os=$1 stanza=$2
  cat >&2 <<EOF
error: no WebGPU adapter found. Dawn needs a Vulkan driver; with no GPU, Mesa's lavapipe
(Mesa 24 or newer; Debian 12's own Mesa 22 is too old) works.
EOF
  if [[ "$os" == debian:bookworm ]]; then
    echo "Run (as root, or re-run this script as root to have it done for you):" >&2
    if ! has_backports_source; then
      if [[ -n "$stanza" ]]; then
        echo "sudo tee $BACKPORTS_FILE >/dev/null <<'SRC'" >&2
        printf '%s\n' "$stanza" >&2
        echo "SRC" >&2
      else
        echo "# add the bookworm-backports suite (same mirror as bookworm) to your apt sources" >&2
      fi
    fi
    cat >&2 <<EOF
sudo apt-get update
sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -t bookworm-backports ${GPU_PACKAGES[*]}
then re-run: bash tools/quickstart.sh ${MODE}
EOF
  else
    cat >&2 <<EOF
Install the Vulkan loader and a Vulkan driver (Mesa >= 24 for lavapipe), for example:
  Debian/Ubuntu:  sudo apt-get install mesa-vulkan-drivers libvulkan1
  Fedora:         sudo dnf install mesa-vulkan-drivers vulkan-loader
  Arch:           sudo pacman -S vulkan-swrast vulkan-icd-loader
then re-run: bash tools/quickstart.sh ${MODE}
EOF
  fi
  exit 1
}

install_lavapipe_debian() {
  local updated=0 added=0
  if has_backports_source; then
    step "apt already has bookworm-backports"
  else
    local stanza
    stanza=$(derive_backports_stanza)
    [[ -n "$stanza" ]] || print_manual_gpu_help "debian:bookworm" ""
    step "adding bookworm-backports to apt ($BACKPORTS_FILE)"
    printf '%s\n' "$stanza" >"$BACKPORTS_FILE"
    added=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  local lists
  lists=$(find /var/lib/apt/lists -maxdepth 1 -name '*bookworm-backports*Packages*' 2>/dev/null | head -n 1)
  if ((added)) || [[ -z "$lists" ]]; then
    step "apt-get update"
    quiet apt-get update -qq || die "apt-get update failed"
    updated=1
  fi
  step "installing ${GPU_PACKAGES[*]} from bookworm-backports (Mesa lavapipe)"
  local -a install=(apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0
    -t bookworm-backports "${GPU_PACKAGES[@]}")
  if ! quiet "${install[@]}"; then
    ((updated)) && die "apt-get install failed"
    step "apt-get update (package lists were stale)"
    quiet apt-get update -qq || die "apt-get update failed"
    quiet "${install[@]}" || die "apt-get install failed"
  fi
}

ensure_adapter() {
  export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
  step "probing for a WebGPU adapter"
  local rc=0
  probe_adapter || rc=$?
  ((rc == 0)) && return 0
  # Exit 1 is a setup problem (webgpu not installed), not a missing driver.
  ((rc == 1)) && die "the adapter probe could not run (see above)"
  local os
  os=$(os_id)
  if [[ "$os" == debian:bookworm && "$(id -u)" == 0 ]]; then
    install_lavapipe_debian
    step "probing for a WebGPU adapter again"
    probe_adapter || die "still no WebGPU adapter after installing ${GPU_PACKAGES[*]}"
  else
    print_manual_gpu_help "$os" "$(derive_backports_stanza 2>/dev/null || true)"
  fi
}

# --- 6. the segtrain command on PATH ------------------------------------------------------------
SHIM_MARKER='# segtrain shim written by tools/quickstart.sh'

# A two-line shell script that runs this checkout's CLI: /usr/local/bin as root, else ~/.local/bin.
# A `segtrain` there that is not ours is left alone.
link_cli() {
  local dir shim
  if [[ "$(id -u)" == 0 ]]; then dir=/usr/local/bin; else dir="$HOME/.local/bin"; fi
  shim="$dir/segtrain"
  if [[ -e "$shim" ]] && ! grep -qF "$SHIM_MARKER" "$shim" 2>/dev/null; then
    step "not linking segtrain: $shim exists and is not ours (run: node $REPO_ROOT/apps/cli/dist/bin.js)"
    return 0
  fi
  mkdir -p "$dir" || {
    step "not linking segtrain: cannot create $dir"
    return 0
  }
  printf '#!/bin/sh\n%s: it runs the CLI of %s; delete this file to undo.\nexec node "%s/apps/cli/dist/bin.js" "$@"\n' \
    "$SHIM_MARKER" "$REPO_ROOT" "$REPO_ROOT" >"$shim.tmp"
  chmod +x "$shim.tmp" && mv -f "$shim.tmp" "$shim"
  step "linked the segtrain command: $shim runs $REPO_ROOT/apps/cli/dist/bin.js (rm $shim to undo)"
  case ":$PATH:" in
    *":$dir:"*) ;;
    *) step "note: $dir is not on PATH; add it: export PATH=\"$dir:\$PATH\"" ;;
  esac
}

# --- the demo: generated street scenes, PP-LiteSeg-T from scratch, evaluation, masks -----------
DEMO_CONFIG=configs/demo/pp_liteseg_stdc1_demo_128x256.yml
DEMO_DATA=data/demo
DEMO_OUT=output/demo

run_demo() {
  local segtrain=(node apps/cli/dist/bin.js)
  step "the demo dataset: ${DEMO_DATA} (generated once, then reused)"
  "${segtrain[@]}" data demo --out "$DEMO_DATA"
  rm -rf "$DEMO_OUT"
  step "training PP-LiteSeg-T from scratch: ${DEMO_CONFIG}"
  "${segtrain[@]}" train --config "$DEMO_CONFIG" --do_eval --use_vdl --save_dir "$DEMO_OUT" \
    --save_interval "${SEGTRAIN_DEMO_SAVE_INTERVAL:-250}" --log_iters 10 --num_workers 1 --seed 1
  step "predicting masks for the validation images"
  "${segtrain[@]}" predict --config "$DEMO_CONFIG" --model_path "$DEMO_OUT/best_model" \
    --image_path "$DEMO_DATA/leftImg8bit/val" --save_dir "$DEMO_OUT/predict"
  cat <<EOF
==> demo done:
    checkpoints      ${DEMO_OUT}/iter_*/, ${DEMO_OUT}/best_model/
    training plot    ${DEMO_OUT}/training.html (loss, learning rate, mIoU)
    event files      ${DEMO_OUT}/events.out.tfevents.* (tensorboard --logdir ${DEMO_OUT})
    masks, overlays  ${DEMO_OUT}/predict/pseudo_color_prediction/, ${DEMO_OUT}/predict/added_prediction/
EOF
}

main() {
  check_node
  ensure_pnpm
  export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
  step "XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR}"
  export TURBO_TELEMETRY_DISABLED=${TURBO_TELEMETRY_DISABLED:-1}
  install_and_build
  ensure_adapter
  link_cli
  case "$MODE" in
    setup) step "setup done in ${REPO_ROOT}" ;;
    demo)
      run_demo
      ;;
    test)
      step "running the checks (pnpm check)"
      pnpm --loglevel silent run check
      ;;
  esac
}

main
