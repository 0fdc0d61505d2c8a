#!/usr/bin/env bash
# Builds the Versity S3 Gateway (an S3-compatible server over a directory) from Go
# modules (go.mod and go.sum here pin it; no third-party source in the repo) into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/stv3/versitygw-<version>/versitygw
# for the backup upload tests (worker/tests/backup_s3.rs, which find it through
# STV3_S3GW or that path). Skips the build when the binary is there. Idempotent. Logs go
# to stderr; stdout gets only the binary's path.
#
#   e2e/s3gw/build.sh            build if missing, print the path
#   e2e/s3gw/build.sh --print    only print the path
#   STV3_E2E_NICE=N ...          nice level of the build (default 10)
#
# To bump: edit the version in go.mod, then `GOFLAGS=-mod=mod go mod tidy` here.
set -euo pipefail

MOD_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[e2e-s3gw] %s\n' "$*" >&2; }
die() { printf '[e2e-s3gw] ERROR: %s\n' "$*" >&2; exit 1; }

if ! command -v go >/dev/null; then
  [[ -x /usr/local/go/bin/go ]] || die "go is not on PATH (the gateway is built from Go modules)"
  PATH="$PATH:/usr/local/go/bin"
fi

MODULE=github.com/versity/versitygw
VERSION="$(awk -v m="$MODULE" '$1 == "require" && $2 == m { print $3; exit } $1 == m { print $2; exit }' "$MOD_DIR/go.mod")"
[[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]] || die "cannot read the $MODULE version from $MOD_DIR/go.mod (got '${VERSION}')"

OUT_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/stv3/versitygw-$VERSION"
BIN="$OUT_DIR/versitygw"
if [[ ${1:-} == --print ]]; then echo "$BIN"; exit 0; fi
[[ $# -eq 0 ]] || die "usage: build.sh [--print]"
if [[ -x $BIN ]]; then
  log "cached: versitygw $VERSION ($BIN)"
  echo "$BIN"
  exit 0
fi

mkdir -p "$OUT_DIR"
export CGO_ENABLED=0
# go.sum is committed and complete: keep it read-only, never rewrite it here.
export GOFLAGS="-mod=readonly -buildvcs=false"
tmp="$OUT_DIR/.versitygw.tmp.$$"
trap 'rm -f "$tmp"' EXIT
log "building versitygw $VERSION into $OUT_DIR ..."
start=$SECONDS
if ! (cd "$MOD_DIR" && nice -n "${STV3_E2E_NICE:-10}" go build -trimpath -ldflags="-s -w" \
      -o "$tmp" "$MODULE/cmd/versitygw") >&2; then
  die "building versitygw failed (go build $MODULE/cmd/versitygw in $MOD_DIR); see the error above"
fi
"$tmp" --version >/dev/null 2>&1 || die "the freshly built versitygw does not run ($tmp --version failed)"
mv "$tmp" "$BIN"
log "built versitygw in $((SECONDS - start))s"
echo "$BIN"
