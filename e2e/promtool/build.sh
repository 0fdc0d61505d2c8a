#!/usr/bin/env bash
# Builds Prometheus's promtool from Go modules (no third-party source in the repo; go.mod
# and go.sum here pin it) into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/stv3/promtool-<version>/promtool
# where <version> is the github.com/prometheus/prometheus version in go.mod (v0.3MM.P
# for Prometheus v3.MM.P), so bumping it rebuilds. Skips the build when the binary is
# already there. Idempotent. Logs go to stderr; stdout gets only the binary's path.
#
#   e2e/promtool/build.sh            build if missing, print the path
#   e2e/promtool/build.sh --print    only print the path
#   STV3_PROMTOOL_DIR=/some/dir ...  use that directory instead of the cache one
#   STV3_E2E_NICE=N ...              nice level of the build (default 10)
#
# To bump: edit the version in go.mod, then `GOFLAGS=-mod=mod go mod tidy` here.
set -euo pipefail

PROMTOOL_MOD_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[e2e-promtool] %s\n' "$*" >&2; }
die() { printf '[e2e-promtool] ERROR: %s\n' "$*" >&2; exit 1; }

if ! command -v go >/dev/null; then
  [[ -x /usr/local/go/bin/go ]] || die "go is not on PATH (promtool is built from Go modules)"
  PATH="$PATH:/usr/local/go/bin"
fi

PROM_MODULE=github.com/prometheus/prometheus
PROM_VERSION="$(awk -v m="$PROM_MODULE" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' \
  "$PROMTOOL_MOD_DIR/go.mod")"
[[ $PROM_VERSION =~ ^v0\.[0-9]+\.[0-9]+ ]] || die "cannot read the $PROM_MODULE version from $PROMTOOL_MOD_DIR/go.mod (got '${PROM_VERSION}')"

OUT_DIR="${STV3_PROMTOOL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stv3/promtool-$PROM_VERSION}"
BIN="$OUT_DIR/promtool"
if [[ ${1:-} == --print ]]; then echo "$BIN"; exit 0; fi
[[ $# -eq 0 ]] || die "usage: build.sh [--print]"

if [[ -x $BIN ]]; then
  log "cached: promtool $PROM_VERSION ($BIN)"
  echo "$BIN"
  exit 0
fi

# Module v0.3MM.P[-pre] is Prometheus release 3.MM.P[-pre]: stamp that, as its promu
# build does, so `promtool --version` reports the real release.
rest="${PROM_VERSION#v0.}"            # 316.0 or 314.0-rc.0
mm="${rest%%.*}"                       # 316
release="$((10#$mm / 100)).$((10#$mm % 100)).${rest#*.}"
v=github.com/prometheus/common/version
ldflags="-s -w -X $v.Version=$release -X $v.Revision=$PROM_MODULE@$PROM_VERSION -X $v.Branch=HEAD"
ldflags+=" -X $v.BuildUser=stv3-e2e -X $v.BuildDate=19700101-00:00:00"

mkdir -p "$OUT_DIR"
export CGO_ENABLED=0
# go.sum is committed and complete: keep it read-only, never rewrite it here.
export GOFLAGS="-mod=readonly -buildvcs=false"
tmp="$OUT_DIR/.promtool.tmp.$$"
trap 'rm -f "$tmp"' EXIT
log "building promtool $release ($PROM_MODULE $PROM_VERSION) into $OUT_DIR ..."
start=$SECONDS
# stdout of go goes to stderr too: this script's stdout is only the path.
if ! (cd "$PROMTOOL_MOD_DIR" && nice -n "${STV3_E2E_NICE:-10}" go build -trimpath -ldflags="$ldflags" \
      -o "$tmp" "$PROM_MODULE/cmd/promtool") >&2; then
  die "building promtool failed (go build $PROM_MODULE/cmd/promtool in $PROMTOOL_MOD_DIR); see the error above"
fi
"$tmp" --version >/dev/null 2>&1 || die "the freshly built promtool does not run ($tmp --version failed)"
mv "$tmp" "$BIN"
log "built promtool in $((SECONDS - start))s"
echo "$BIN"
