// Every StudioHub container image, built from the repository root (docs/images.md):
//
//   docker buildx bake -f images/docker-bake.hcl              all images (group "default")
//   docker buildx bake -f images/docker-bake.hcl cpu          the CPU single-user images
//   docker buildx bake -f images/docker-bake.hcl gpu          the GPU single-user images
//   REGISTRY=registry.example.com/team docker buildx bake -f images/docker-bake.hcl --push
//
// or `make images` / scripts/build-images.sh. The single-user images' tags are the
// catalog's container_image references (hub_config/studiohub/catalog.yaml) with REGISTRY
// in front when it is set; tests/unit/test_images.py checks that the two agree.

variable "REGISTRY" {
  // Registry and namespace put in front of every tag, e.g. "ghcr.io/acme"; empty: none.
  default = ""
}

variable "VERSION" {
  // StudioHub's version (pyproject.toml), the tag of every image.
  default = "0.1.0"
}

function "tag" {
  params = [name]
  result = REGISTRY == "" ? "${name}:${VERSION}" : "${trimsuffix(REGISTRY, "/")}/${name}:${VERSION}"
}

group "default" {
  targets = ["hub", "cpu", "gpu"]
}

group "cpu" {
  targets = ["base-cpu", "tensorflow-cpu", "pytorch-cpu", "mxnet-cpu"]
}

group "gpu" {
  targets = ["tensorflow-gpu", "pytorch-gpu", "mxnet-gpu"]
}

// What every image shares. The requirement files are frozen for x86_64 Linux (and
// mxnet-cu112 exists only there), so the images are built for linux/amd64.
target "_studiohub" {
  context   = "."
  platforms = ["linux/amd64"]
  labels = {
    "org.opencontainers.image.version"  = VERSION
    "org.opencontainers.image.licenses" = "BSD-3-Clause"
    "org.opencontainers.image.vendor"   = "StudioHub"
  }
}

target "hub" {
  inherits   = ["_studiohub"]
  dockerfile = "images/hub/Dockerfile"
  tags       = [tag("studiohub/hub")]
}

target "base-cpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/base-cpu/Dockerfile"
  tags       = [tag("studiohub/base-cpu")]
}

target "tensorflow-cpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/tensorflow-cpu/Dockerfile"
  tags       = [tag("studiohub/tensorflow-cpu")]
}

target "pytorch-cpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/pytorch-cpu/Dockerfile"
  tags       = [tag("studiohub/pytorch-cpu")]
}

target "mxnet-cpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/mxnet-cpu/Dockerfile"
  tags       = [tag("studiohub/mxnet-cpu")]
}

target "tensorflow-gpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/tensorflow-gpu/Dockerfile"
  tags       = [tag("studiohub/tensorflow-gpu")]
}

target "pytorch-gpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/pytorch-gpu/Dockerfile"
  tags       = [tag("studiohub/pytorch-gpu")]
}

target "mxnet-gpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/mxnet-gpu/Dockerfile"
  tags       = [tag("studiohub/mxnet-gpu")]
}
