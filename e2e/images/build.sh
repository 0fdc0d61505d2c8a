#!/usr/bin/env bash
# Builds the end-to-end tests' own images (test fixtures, not product), daemonless and
# from Debian's packages, as OCI archives:
#
#   localhost/stv3-e2e/pause:test     the test node's pod sandbox (Go, FROM scratch)
#   localhost/stv3-e2e/mariadb:test   mariadb-server (mmdebstrap), see mariadb/entrypoint.sh
#   localhost/stv3-e2e/rabbitmq:test  rabbitmq-server (mmdebstrap), see rabbitmq/entrypoint.sh
#
# into ${XDG_CACHE_HOME:-~/.cache}/stv3/e2e-images/<hash of this directory>/, skipping
# what is already there (a Debian root takes a minute or two to make). Prints that
# directory last.
#
#   e2e/images/build.sh            build what is missing
#   e2e/images/build.sh --print    only print the directory
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../scripts/oci-lib.sh
source "$ROOT/scripts/oci-lib.sh"

KEY=$(cd "$HERE" && find . "$ROOT/scripts/oci-lib.sh" -type f ! -name '*.tar' -print0 | sort -z \
  | xargs -0 sha256sum | sha256sum | cut -c1-16)
OUT=${STV3_E2E_IMAGES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stv3/e2e-images/$KEY}
if [[ ${1:-} == --print ]]; then echo "$OUT"; exit 0; fi

# Debian's packages come from the host's own apt sources (the one registry reachable).
SOURCES=${STV3_E2E_APT_SOURCES:-}
if [[ -z $SOURCES ]]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [[ -s $f ]]; then SOURCES=$f; break; fi
  done
fi
SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stv3-e2e-images.XXXXXX")
trap 'oci_buildah_done "$WORK/storage"; rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
started=0

begin() {
  if ((started == 0)); then
    oci_buildah_init "$WORK/storage"
    started=1
  fi
}

# debian_root DIR UID NAME HOME PACKAGES... : a minimal Debian root (essential packages
# plus PACKAGES, no docs) as DIR/rootfs.tar, with the service user NAME made uid/gid UID
# before the packages' maintainer scripts run (they then keep it), and HOME (emptied of
# whatever the maintainer scripts put there) owned by it.
debian_root() {
  local dir=$1 uid=$2 user=$3 home=$4
  shift 4
  oci_apt_install mmdebstrap
  [[ -n $SOURCES ]] || oci_die "no apt sources found on this machine for mmdebstrap"
  local include
  include=$(IFS=,; echo "$*")
  oci_log "mmdebstrap $SUITE + $include (from $SOURCES)"
  mmdebstrap --quiet --variant=essential --include="$include" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --essential-hook="echo '$user:x:$uid:$uid::$home:/usr/sbin/nologin' >>\"\$1/etc/passwd\"; echo '$user:x:$uid:' >>\"\$1/etc/group\"; echo '$user:!:19000::::::' >>\"\$1/etc/shadow\"" \
    --customize-hook="rm -rf \"\$1$home\"; install -d -o $uid -g $uid \"\$1$home\"" \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
    "$SUITE" "$dir/rootfs.tar" "$SOURCES" >&2 || oci_die "mmdebstrap failed for $*"
}

# image NAME DIR : builds e2e/images/DIR (its Containerfile, plus what was staged in
# WORK/DIR) into OUT/DIR.oci.tar.
image() {
  local name=$1 dir=$2 ctx=$WORK/$2
  mkdir -p "$ctx"
  cp -r "$HERE/$dir/." "$ctx/"
  oci_build "$name" "$ctx" "$ctx/Containerfile" 0 "$OUT/$dir.oci.tar.tmp" >/dev/null
  mv "$OUT/$dir.oci.tar.tmp" "$OUT/$dir.oci.tar"
  oci_log "$name -> $OUT/$dir.oci.tar ($(du -h "$OUT/$dir.oci.tar" | cut -f1))"
}

if [[ ! -s $OUT/pause.oci.tar ]]; then
  begin
  command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
  mkdir -p "$WORK/pause"
  (cd "$HERE/pause" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$WORK/pause/pause" .) \
    || oci_die "building the pause program failed"
  image localhost/stv3-e2e/pause:test pause
fi
if [[ ! -s $OUT/mariadb.oci.tar ]]; then
  begin
  mkdir -p "$WORK/mariadb"
  debian_root "$WORK/mariadb" 999 mysql /var/lib/mysql mariadb-server mariadb-client
  image localhost/stv3-e2e/mariadb:test mariadb
fi
if [[ ! -s $OUT/rabbitmq.oci.tar ]]; then
  begin
  mkdir -p "$WORK/rabbitmq"
  debian_root "$WORK/rabbitmq" 999 rabbitmq /var/lib/rabbitmq rabbitmq-server
  image localhost/stv3-e2e/rabbitmq:test rabbitmq
fi
echo "$OUT"
