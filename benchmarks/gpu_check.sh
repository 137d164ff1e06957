#!/usr/bin/env bash
# The GPU check (docs/scaling.md, "On a GPU"): the landscape and Hessian benchmarks on the
# device, a 2-rank MPI landscape sharing one device, and a tiny workflow on the device compared
# with the same workflow on the CPU. Writes summary.json and table.md in --out; exits 0 only when
# every step that ran passed. Within 8 minutes on one GPU (GPU_CHECK_TOTAL_S, default 480 s).
#
#   bash benchmarks/gpu_check.sh [--device cuda|cpu] [--out DIR] [--wheels DIR]
#
# --device cuda (default): uses a Python whose torch sees a CUDA device ($PYTHON, default
#   python3). With --wheels DIR (a wheelhouse: python benchmarks/gpu_check.py --build-wheelhouse
#   DIR), it first makes a venv that reuses that Python's packages (its CUDA torch) and installs
#   the wheelhouse offline; a torch wheel in DIR (with its dependencies) is installed first where
#   that Python has no CUDA torch. No CUDA torch and no torch wheel: it stops and says so.
# --device cpu: the same steps, smaller, on the CPU, in the Python at hand ($PYTHON, else
#   .venv/bin/python, else python3), installing nothing.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEVICE=cuda
OUT="$REPO/results/benchmarks/gpu_check"
WHEELS=""

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() {
    echo "gpu_check: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --device)
            [ $# -ge 2 ] || die "--device needs a value"
            DEVICE=$2
            shift 2
            ;;
        --device=*)
            DEVICE=${1#*=}
            shift
            ;;
        --out)
            [ $# -ge 2 ] || die "--out needs a value"
            OUT=$2
            shift 2
            ;;
        --out=*)
            OUT=${1#*=}
            shift
            ;;
        --wheels)
            [ $# -ge 2 ] || die "--wheels needs a value"
            WHEELS=$2
            shift 2
            ;;
        --wheels=*)
            WHEELS=${1#*=}
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown argument: $1"
            ;;
    esac
done
case "$DEVICE" in cuda | cpu) ;; *) die "--device is cuda or cpu, not '$DEVICE'" ;; esac
if [ "$DEVICE" = cpu ]; then TOTAL_S=${GPU_CHECK_TOTAL_S:-600}; else TOTAL_S=${GPU_CHECK_TOTAL_S:-480}; fi
if [ -n "$WHEELS" ]; then
    [ "$DEVICE" = cuda ] || die "--wheels is for --device cuda (--device cpu installs nothing)"
    [ -d "$WHEELS" ] || die "--wheels $WHEELS: no such folder"
    WHEELS=$(cd "$WHEELS" && pwd)
fi
mkdir -p "$OUT" || die "cannot make $OUT"
OUT=$(cd "$OUT" && pwd)
SETUP_LOG="$OUT/setup.log"
: >"$SETUP_LOG"
START=$SECONDS
say() { echo "gpu_check: $*" | tee -a "$SETUP_LOG" >&2; }
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [ -z "${PYTHON:-}" ]; then
    if [ "$DEVICE" = cpu ] && [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null || die "no $PYTHON (set PYTHON=...)"

has_cuda_torch() { timeout 120 "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)' >>"$SETUP_LOG" 2>&1; }

# A venv that sees the base Python's packages. Where that Python is itself a venv (the device
# machine's python3 is /opt/torch/.venv's), --system-site-packages would give the interpreter
# below it, not that venv's packages: a .pth file adds them (pip included, so no ensurepip).
make_venv() {
    local base=$1 venv=$2 parent purelib
    rm -rf "$venv"
    "$base" -m venv --without-pip --system-site-packages "$venv" >>"$SETUP_LOG" 2>&1 || return 1
    parent=$("$base" -c 'import site, sys; print("\n".join(site.getsitepackages()) if sys.prefix != sys.base_prefix else "")') || return 1
    purelib=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
    if [ -n "$parent" ]; then printf '%s\n' "$parent" >"$purelib/_gpu_check_base_packages.pth"; fi
    "$venv/bin/python" -m pip --version >>"$SETUP_LOG" 2>&1
}

pip_offline() { timeout 180 "$PYTHON" -m pip install --no-index --find-links "$WHEELS" --no-cache-dir --disable-pip-version-check --quiet "$@" >>"$SETUP_LOG" 2>&1; }

SETUP_STATUS=skipped
SETUP_REASON="no --wheels: the steps use $PYTHON's own packages"
if [ "$DEVICE" = cpu ]; then
    SETUP_REASON="--device cpu: nothing installed; the steps use $PYTHON"
else
    if ! has_cuda_torch "$PYTHON"; then
        if [ -z "$WHEELS" ] || ! compgen -G "$WHEELS/torch-*.whl" >/dev/null; then
            die "$PYTHON's torch sees no CUDA device (or there is no torch; see $SETUP_LOG), and no torch wheel was given (--wheels DIR with a CUDA torch-*.whl). Run on a GPU machine, set PYTHON to a Python with a CUDA torch, or use --device cpu."
        fi
        NEED_TORCH=1
    fi
    if [ -n "$WHEELS" ]; then
        VENV=${GPU_CHECK_VENV:-${TMPDIR:-/tmp}/toposweep-gpu-check-venv}
        say "venv $VENV over $PYTHON, wheels from $WHEELS"
        if ! make_venv "$PYTHON" "$VENV"; then
            [ -z "${NEED_TORCH:-}" ] || die "could not make a venv over $PYTHON to install torch into (see $SETUP_LOG)"
            SETUP_STATUS=failed
            SETUP_REASON="could not make a venv with pip over $PYTHON (setup.log); the steps use $PYTHON as it is"
        else
            PYTHON="$VENV/bin/python"
            SETUP_STATUS=passed
            SETUP_REASON="venv over the device's Python, wheelhouse installed offline"
            # A CUDA torch over the base Python's (CPU) one: the folder holds its dependencies too.
            if [ -n "${NEED_TORCH:-}" ] && ! pip_offline --ignore-installed "$WHEELS"/torch-*.whl; then
                die "installing torch from $WHEELS failed (see $SETUP_LOG)"
            fi
            if [ -f "$WHEELS/requirements.txt" ]; then set -- -r "$WHEELS/requirements.txt"; else set -- "$WHEELS"/*.whl; fi
            if ! pip_offline "$@"; then
                # pip's resolver wanted a version neither the image nor the folder has: install
                # the folder's pins as they are and let the steps show what is missing.
                say "pip could not resolve the wheelhouse against the image (setup.log); installing it with --no-deps"
                if pip_offline --no-deps "$@"; then
                    SETUP_REASON="wheelhouse installed with --no-deps (pip's resolver failed: setup.log)"
                else
                    SETUP_STATUS=failed
                    SETUP_REASON="installing the wheelhouse failed (setup.log); steps that need it are skipped"
                fi
            fi
            export PATH="$VENV/bin:$PATH"
        fi
    fi
    if [ "$SETUP_STATUS" = passed ] && ! has_cuda_torch "$PYTHON"; then
        die "after the setup, $PYTHON's torch sees no CUDA device (see $SETUP_LOG)"
    fi
fi

ELAPSED=$((SECONDS - START))
LEFT=$((TOTAL_S - ELAPSED))
[ "$LEFT" -gt 60 ] || die "the setup took ${ELAPSED} s of the ${TOTAL_S} s"
say "setup: $SETUP_STATUS in ${ELAPSED} s ($SETUP_REASON); the steps get ${LEFT} s"
timeout --kill-after=10 "$LEFT" "$PYTHON" "$REPO/benchmarks/gpu_check.py" --device "$DEVICE" \
    --out "$OUT" --budget-s $((LEFT - 15)) --setup-status "$SETUP_STATUS" \
    --setup-reason "$SETUP_REASON" --setup-seconds "$ELAPSED"
rc=$?
[ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "gpu_check: the steps ran past their ${LEFT} s" >&2
[ "$SETUP_STATUS" = failed ] && [ $rc -eq 0 ] && rc=1
exit $rc
