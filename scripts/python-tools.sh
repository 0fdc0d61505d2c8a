#!/usr/bin/env bash
# Installs (only when missing) the Python tools the API's tests run against our server:
#
#   - schemathesis, in a Python 3 venv at $STV3_VENV (default ~/.cache/stv3/venv);
#   - the ORIGINAL klugman CLI (PyPI klugman 0.5.dev25), which is Python 2 code
#     (`import base`, `dict.iteritems`), in a Python 2.7 virtualenv at $STV3_VENV/py2,
#     created with a virtualenv release that can still make Python 2 environments.
#
#   scripts/python-tools.sh            install what is missing, then print the tool paths
#   scripts/python-tools.sh paths      print the paths only (exit 1 when not installed)
#
# Prints `schemathesis=<path>` and `klugman=<path>` lines on stdout; logs on stderr.
# Idempotent: a second run only checks. Needs python3 (3.9+) and a python2.7 (pyenv's
# is found under ~/.pyenv/versions) for klugman.
set -euo pipefail

VENV=${STV3_VENV:-$HOME/.cache/stv3/venv}
PY2_VENV=$VENV/py2
KLUGMAN_VERSION=${STV3_KLUGMAN_VERSION:-0.5.dev25}
SCHEMATHESIS_SPEC=${STV3_SCHEMATHESIS_SPEC:-schemathesis>=4,<5}
# virtualenv dropped creating Python 2 environments in 20.22.
VIRTUALENV_SPEC='virtualenv>=20.16,<20.22'

log() { printf '[python-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

print_paths() {
  local ok=0
  if [ -x "$VENV/bin/schemathesis" ]; then echo "schemathesis=$VENV/bin/schemathesis"; else ok=1; fi
  if [ -x "$PY2_VENV/bin/klugman" ]; then echo "klugman=$PY2_VENV/bin/klugman"; else ok=1; fi
  return $ok
}

if [ "${1:-}" = paths ]; then
  print_paths
  exit $?
fi

find_python3() {
  local c
  for c in "${STV3_PYTHON3:-}" python3.12 python3.11 python3; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}

find_python2() {
  local c
  for c in "${STV3_PYTHON2:-}" "$HOME"/.pyenv/versions/2.7*/bin/python2.7 python2.7; do
    [ -n "$c" ] || continue
    if [ -x "$c" ] || command -v "$c" >/dev/null 2>&1; then
      if "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
        echo "$c"
        return 0
      fi
    fi
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PY3=$(find_python3) || die "no python3 (3.9 or newer) found"
  log "creating $VENV with $PY3"
  mkdir -p "$(dirname "$VENV")"
  "$PY3" -m venv "$VENV"
fi

if [ ! -x "$VENV/bin/schemathesis" ] || [ ! -x "$VENV/bin/virtualenv" ]; then
  log "pip install $SCHEMATHESIS_SPEC $VIRTUALENV_SPEC"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$SCHEMATHESIS_SPEC" "$VIRTUALENV_SPEC" >&2
fi

if [ ! -x "$PY2_VENV/bin/klugman" ]; then
  PY2=$(find_python2) || die "klugman is Python 2 code and no python2.7 was found (set STV3_PYTHON2)"
  if [ ! -x "$PY2_VENV/bin/python" ]; then
    log "creating $PY2_VENV with $PY2"
    "$VENV/bin/virtualenv" -q -p "$PY2" "$PY2_VENV" >&2
  fi
  log "pip install klugman==$KLUGMAN_VERSION (Python 2.7)"
  "$PY2_VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "klugman==$KLUGMAN_VERSION" >&2
fi

print_paths || die "installation incomplete"
