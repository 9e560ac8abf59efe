#!/usr/bin/env bash
# Build the services' image (deploy/Dockerfile) with whatever container tool this machine has.
#
#   deploy/image.sh build          build $IMAGE (`make image`)
#   deploy/image.sh engine         print the tool that would build it
#   deploy/image.sh name           print the image's name ($IMAGE)
#   deploy/image.sh run ARGS...    run the image with ARGS (e.g. `serve judge --help`)
#
# Tool: docker when its daemon answers, otherwise podman, otherwise buildah (both are Debian
# packages: apt-get install podman buildah runc uidmap debootstrap). ENGINE=docker|podman|buildah
# forces one.
#
# Base image: the Dockerfile's PYTHON_IMAGE (python:3.11-slim-bookworm). Without a reachable
# image registry, podman and buildah make one instead: a minimal Debian bookworm with python3 and
# venv, bootstrapped with debootstrap from the machine's apt mirror and imported as $LOCAL_BASE
# (made once, then reused). BASE=registry|debootstrap skips the guess.
#
# Environment: IMAGE (default warriorcoder:<version in pyproject.toml>), PYTHON_IMAGE, LOCAL_BASE
# (default localhost/pybase:bookworm), DEBIAN_MIRROR (default: the machine's first apt URI),
# PULL_TIMEOUT_S (how long to try the registry, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
IMAGE=${IMAGE:-warriorcoder:$VERSION}
PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim-bookworm}
LOCAL_BASE=${LOCAL_BASE:-localhost/pybase:bookworm}
PULL_TIMEOUT_S=${PULL_TIMEOUT_S:-60}
# podman/buildah in a container or VM without cgroup v2 delegation: crun refuses (hybrid cgroups)
# and raising the open-files limit is not permitted, so use runc and fixed limits.
PODMAN_RUN_FLAGS=(--runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

log() { echo "image: $*" >&2; }

engine() {
  if [[ -n "${ENGINE:-}" ]]; then echo "$ENGINE"; return; fi
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker; return; fi
  if command -v podman >/dev/null; then echo podman; return; fi
  if command -v buildah >/dev/null; then echo buildah; return; fi
  log "no container tool: install docker, or podman (apt-get install podman runc uidmap debootstrap)"
  return 1
}

has_image() {  # has_image ENGINE NAME
  case $1 in
    docker) docker image inspect "$2" >/dev/null 2>&1 ;;
    podman) podman image exists "$2" ;;
    buildah) buildah inspect --type image "$2" >/dev/null 2>&1 ;;
  esac
}

debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n "$uri" ]] || uri=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

make_local_base() {  # make_local_base ENGINE: debootstrap a bookworm root and import it
  local tool=$1 rootfs
  command -v debootstrap >/dev/null || { log "debootstrap is needed (apt-get install debootstrap)"; return 1; }
  [[ $(id -u) == 0 ]] || { log "debootstrap needs root"; return 1; }
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/warriorcoder-rootfs.XXXXXX")
  log "no base image; bootstrapping Debian bookworm from $(debian_mirror) into $rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$(debian_mirror)" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; rm -rf "$rootfs" "$rootfs.log"; return 1; }
  rm -f "$rootfs.log"
  # Package lists and caches are of no use in the image.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  log "importing it as $LOCAL_BASE"
  case $tool in
    podman) tar -C "$rootfs" -c . | podman import - "$LOCAL_BASE" >/dev/null ;;
    buildah)
      # buildah has no `import`: unpack the tree into an empty container's root, then commit.
      local ctr mnt
      ctr=$(buildah from scratch)
      mnt=$(buildah mount "$ctr")
      tar -C "$rootfs" -c . | tar -C "$mnt" -x
      buildah umount "$ctr" >/dev/null
      buildah commit --rm "$ctr" "$LOCAL_BASE" >/dev/null ;;
  esac
  rm -rf "$rootfs"
}

base_image() {  # base_image ENGINE: the base to build FROM, made when none can be had
  local tool=$1 mode=${BASE:-auto}
  if [[ $mode != debootstrap ]]; then
    if has_image "$tool" "$PYTHON_IMAGE"; then echo "$PYTHON_IMAGE"; return; fi
    log "pulling $PYTHON_IMAGE (at most ${PULL_TIMEOUT_S}s)"
    if timeout "$PULL_TIMEOUT_S" "$tool" pull -q "$PYTHON_IMAGE" >/dev/null 2>&1; then
      echo "$PYTHON_IMAGE"; return
    fi
    [[ $mode == registry ]] && { log "cannot pull $PYTHON_IMAGE"; return 1; }
    log "no registry reachable for $PYTHON_IMAGE"
  fi
  if [[ $tool == docker ]]; then log "docker needs a registry for its base image"; return 1; fi
  has_image "$tool" "$LOCAL_BASE" || make_local_base "$tool"
  echo "$LOCAL_BASE"
}

build() {
  local tool base start=$SECONDS
  tool=$(engine)
  base=$(base_image "$tool")
  log "building $IMAGE with $tool from $base"
  case $tool in
    docker)
      docker build --build-arg PYTHON_IMAGE="$base" -f deploy/Dockerfile -t "$IMAGE" . ;;
    podman)
      # The host network (pip reaches its index the way the host does) and the host's CA bundle,
      # mounted for the build only: pip trusts what the host trusts, the image keeps its own.
      podman build "${PODMAN_RUN_FLAGS[@]}" --network=host -v /etc/ssl/certs:/etc/ssl/certs:ro \
        --build-arg PYTHON_IMAGE="$base" -f deploy/Dockerfile -t "$IMAGE" . ;;
    buildah)
      buildah bud --runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
        --network=host -v /etc/ssl/certs:/etc/ssl/certs:ro \
        --build-arg PYTHON_IMAGE="$base" -f deploy/Dockerfile -t "$IMAGE" . ;;
  esac
  log "built $IMAGE with $tool in $((SECONDS - start))s"
}

run_image() {
  local tool
  tool=$(engine)
  case $tool in
    docker) docker run --rm --network=host "$IMAGE" "$@" ;;
    podman) podman run "${PODMAN_RUN_FLAGS[@]}" --rm --network=host "$IMAGE" "$@" ;;
    buildah) log "buildah builds but does not run images; install podman to run $IMAGE"; return 1 ;;
  esac
}

case ${1:-build} in
  build) build ;;
  engine) engine ;;
  name) echo "$IMAGE" ;;
  run) shift; run_image "$@" ;;
  *) echo "usage: $0 build|engine|name|run ARGS..." >&2; exit 2 ;;
esac
