#!/usr/bin/env bash
# Build StudioHub's container images with Docker Buildx Bake (images/docker-bake.hcl).
#
#   scripts/build-images.sh                   every image (bake's "default" group)
#   scripts/build-images.sh cpu hub           some targets or groups (cpu, gpu, hub, base-cpu…)
#   REGISTRY=ghcr.io/acme scripts/build-images.sh --push
#
# REGISTRY goes in front of every tag (default: none, so studiohub/base-cpu:0.1.0 as the
# catalog names it); VERSION is the tag (default: the project's version). Other arguments
# go to `docker buildx bake` unchanged (--load, --set, --print …). See docs/images.md.
#
# The bake file is generated from the catalog by images/bake.py (every single-user image
# is images/singleuser/Dockerfile with its own build arguments); after editing the
# catalog, regenerate it: /opt/studiohub/hub/bin/python images/bake.py
set -euo pipefail

cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-docker}
# bake takes a variable from the environment even when empty: an empty VERSION would
# tag every image "name:".
if [ -z "${VERSION:-}" ]; then unset VERSION; fi

if ! command -v "$DOCKER" >/dev/null 2>&1; then
  cat >&2 <<MSG
error: '$DOCKER' not found: building the images needs Docker with the Buildx plugin
(https://docs.docker.com/build/). Build them on a machine that has it, with this command
or 'docker buildx bake -f images/docker-bake.hcl'. Without Docker, the Dockerfiles are
linted, and rendered per bake target and checked against the catalog, by
tests/unit/test_images.py (docs/images.md).
MSG
  exit 127
fi
if ! "$DOCKER" buildx version >/dev/null 2>&1; then
  echo "error: '$DOCKER buildx' is not available: install the Docker Buildx plugin" \
       "(https://docs.docker.com/build/) and run this again" >&2
  exit 1
fi
print=no
for arg in "$@"; do
  if [ "$arg" = "--push" ] && [ -z "${REGISTRY:-}" ]; then
    echo "error: --push without REGISTRY would push to docker.io/studiohub/…: set" \
         "REGISTRY to your registry and namespace (REGISTRY=ghcr.io/acme), or" \
         "REGISTRY=docker.io to push where the catalog's references point" >&2
    exit 2
  fi
  if [ "$arg" = "--print" ]; then print=yes; fi
done
if [ "$print" = no ] && ! "$DOCKER" info >/dev/null 2>&1; then
  echo "error: no Docker engine answers ('$DOCKER info' failed): start Docker, or build" \
       "on a machine that has one" >&2
  exit 1
fi

[ "$print" = yes ] || echo "Building StudioHub images${REGISTRY:+ for $REGISTRY}" \
  "(version ${VERSION:-from images/docker-bake.hcl})" >&2
exec "$DOCKER" buildx bake -f images/docker-bake.hcl "$@"
