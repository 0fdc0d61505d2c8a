#!/usr/bin/env bash
# Builds the product's two images as OCI archives, with no container daemon and nothing
# pulled from a registry (buildah from Debian's packages, FROM scratch):
#
#   <out>/stv3-<version>.oci.tar           ghcr.io/stacktach/stv3:<version>
#   <out>/stv3-operator-<version>.oci.tar  ghcr.io/stacktach/stv3-operator:<version>
#   <out>/digests                          "<image> <manifest digest> <archive>" per line
#
#   scripts/images.sh [--out DIR]     (default dist/images; needs target/release binaries:
#                                      ./build.sh -p builds them and then calls this)
#
# The layout is the Dockerfiles' own: each image's final stage (worker/Dockerfile,
# operator/Dockerfile) is what buildah runs here, with two substitutions only: the base
# image (distroless/cc) becomes FROM scratch plus the files the binaries need (their
# `ldd` libraries, CA certificates, passwd/group: oci_runtime_root), and the build
# stage's output (`COPY --from=build /out/ ...`) becomes the binaries in target/release.
# Paths, user, entrypoint, environment and labels therefore cannot drift apart.
#
# Reproducible: every timestamp is the commit's (SOURCE_DATE_EPOCH when set), files are
# copied in a fixed order with fixed modes, and the identity label (buildah's version)
# is left out, so two builds of one commit give the same digests.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=oci-lib.sh
source "$ROOT/scripts/oci-lib.sh"

OUT=$ROOT/dist/images
while (($#)); do
  case $1 in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    *) oci_die "unknown option $1 (see the header of $0)" ;;
  esac
done

REGISTRY=${STV3_IMAGE_REGISTRY:-ghcr.io/stacktach}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
RELEASE=${CARGO_TARGET_DIR:-$ROOT/target}/release
WORK=$(mktemp -d "${TMPDIR:-/tmp}/stv3-images.XXXXXX")
trap 'oci_buildah_done "$WORK/storage"; rm -rf "$WORK"' EXIT

# containerfile DOCKERFILE : the Dockerfile's final stage, rebased on scratch plus base/,
# with the build stage's output taken from bin/.
containerfile() {
  awk '
    /^FROM[ \t]/ { stage = ""; final = NR }
    { lines[NR] = $0 }
    END {
      print "FROM scratch"
      print "COPY base/ /"
      for (i = final + 1; i <= NR; i++) {
        line = lines[i]
        if (line ~ /--from=build \/out\//) { sub(/--from=build \/out\//, "bin/", line) }
        else if (line ~ /--from=/) { print "unsupported COPY --from in the final stage: " line > "/dev/stderr"; exit 1 }
        print line
      }
    }' "$1"
}

# build_image NAME DOCKERFILE BINARY... : context = base/ + bin/ + the repository's etc/.
build_image() {
  local name=$1 dockerfile=$2 ctx b
  shift 2
  ctx=$WORK/ctx-${name##*/}
  mkdir -p "$ctx/bin"
  for b in "$@"; do
    [[ -x $RELEASE/$b ]] || oci_die "$RELEASE/$b is missing: build the release binaries first (./build.sh -p does)"
    install -m 0755 "$RELEASE/$b" "$ctx/bin/$b"
  done
  oci_runtime_root "$ctx/base" "${@/#/$RELEASE/}"
  cp -r "$ROOT/etc" "$ctx/etc"
  chmod -R u=rwX,go=rX "$ctx/etc"
  containerfile "$ROOT/$dockerfile" >"$ctx/Containerfile" || oci_die "cannot derive a Containerfile from $dockerfile"
  local archive="$OUT/${name##*/}-$VERSION.oci.tar" digest
  oci_log "building $name:$VERSION from $dockerfile's final stage"
  digest=$(oci_build "$name:$VERSION" "$ctx" "$ctx/Containerfile" "$EPOCH" "$archive" \
    "VERSION=$VERSION" "REVISION=$REVISION")
  echo "$name:$VERSION $digest $archive" >>"$OUT/digests.tmp"
  oci_log "$name:$VERSION $digest ($(du -h "$archive" | cut -f1) in $archive)"
}

mkdir -p "$OUT"
rm -f "$OUT/digests.tmp"
oci_buildah_init "$WORK/storage"
build_image "$REGISTRY/stv3" worker/Dockerfile stv3 yagi-event pipeline-worker stv3-api klugman
build_image "$REGISTRY/stv3-operator" operator/Dockerfile stv3-operator
mv "$OUT/digests.tmp" "$OUT/digests"
cat "$OUT/digests"
