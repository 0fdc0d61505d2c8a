# Shared by scripts/images.sh (the product's images) and e2e/images/build.sh (the test
# fixtures' images): daemonless image builds with buildah, nothing pulled from a
# registry. Source it; do not run it.
# shellcheck shell=bash

oci_log() { printf '[images] %s\n' "$*" >&2; }
oci_die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

# oci_apt_install PKG... : install Debian packages that are missing (idempotent).
oci_apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || oci_die "need root to apt-get install ${missing[*]}"
  oci_log "apt-get install ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 \
    || oci_die "apt-get install ${missing[*]} failed"
}

# oci_buildah_init STORE_DIR : sets OCI_BUILDAH, a buildah command on a storage of its own
# (vfs: no overlay mounts, no fuse; works in an unprivileged sandbox too). The storage
# starts empty, so nothing from an earlier build leaks into this one.
oci_buildah_init() {
  oci_apt_install buildah ca-certificates
  rm -rf "$1"
  mkdir -p "$1/root" "$1/run"
  OCI_BUILDAH=(buildah --root "$1/root" --runroot "$1/run" --storage-driver vfs)
}

# oci_buildah_done STORE_DIR : removes the build storage (vfs copies every layer).
oci_buildah_done() {
  "${OCI_BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
  # vfs layers may hold read-only directories.
  chmod -R u+w "$1" 2>/dev/null || true
  rm -rf "$1"
}

# oci_build NAME CONTEXT CONTAINERFILE EPOCH ARCHIVE [BUILD-ARG...] : builds NAME from
# CONTAINERFILE in CONTEXT with every timestamp set to EPOCH (layer files, created,
# history), so the same inputs give the same image digest, and writes the OCI archive
# ARCHIVE. Prints the manifest digest.
oci_build() {
  local name=$1 ctx=$2 file=$3 epoch=$4 archive=$5 args=() a
  shift 5
  for a in "$@"; do args+=(--build-arg "$a"); done
  "${OCI_BUILDAH[@]}" bud --quiet --isolation chroot --timestamp "$epoch" --identity-label=false \
    --format oci ${args[@]+"${args[@]}"} -f "$file" -t "$name" "$ctx" >&2 \
    || oci_die "buildah bud $name failed"
  mkdir -p "$(dirname "$archive")"
  rm -f "$archive"
  local digest_file
  digest_file=$(mktemp)
  "${OCI_BUILDAH[@]}" push --quiet --digestfile "$digest_file" "$name" "oci-archive:$archive:$name" >&2 \
    || oci_die "buildah push $name to $archive failed"
  oci_normalize_archive "$archive" "$epoch"
  cat "$digest_file"
  rm -f "$digest_file"
}

# oci_normalize_archive ARCHIVE EPOCH : rewrites the archive's own tar (index.json, the
# blobs) in name order with fixed times and owners, so that the file, not only the
# image digest inside it, is the same from one build to the next.
oci_normalize_archive() {
  local dir
  dir=$(mktemp -d)
  tar -C "$dir" -xf "$1" || oci_die "cannot read $1"
  tar -C "$dir" --sort=name --mtime="@$2" --owner=0 --group=0 --numeric-owner -cf "$1.tmp" . \
    || oci_die "cannot write $1"
  mv "$1.tmp" "$1"
  rm -rf "$dir"
}

# oci_runtime_root DIR BINARY... : what glibc-linked programs need in an image FROM
# scratch: the shared libraries `ldd` names and the dynamic loader, at the paths the
# binaries ask for; CA certificates; passwd/group with root, nonroot (65532) and
# nobody; nsswitch.conf; a world-writable /tmp. (No musl target is installable here, so
# the binaries cannot be static.)
oci_runtime_root() {
  local dir=$1 lib
  shift
  install -d -m 0755 "$dir/etc/ssl/certs" "$dir/home/nonroot"
  install -d -m 1777 "$dir/tmp"
  for lib in $(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u); do
    install -D -m 0755 "$(readlink -f "$lib")" "$dir$lib"
  done
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] || oci_die "no /etc/ssl/certs/ca-certificates.crt (package ca-certificates)"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >"$dir/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' 'nogroup:x:65534:' >"$dir/etc/group"
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$dir/etc/nsswitch.conf"
  chmod 0644 "$dir/etc/passwd" "$dir/etc/group" "$dir/etc/nsswitch.conf"
}
