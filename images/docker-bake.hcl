// Every StudioHub container image, built from the repository root (docs/images.md).
// GENERATED from the catalog by images/bake.py: edit the catalog or that file, then run
//   /opt/studiohub/hub/bin/python images/bake.py
// (tests/unit/test_images.py fails while this file is out of date).
//
//   docker buildx bake -f images/docker-bake.hcl              all images (group "default")
//   docker buildx bake -f images/docker-bake.hcl cpu          the CPU single-user images
//   docker buildx bake -f images/docker-bake.hcl gpu          the GPU single-user images
//   REGISTRY=registry.example.com/team docker buildx bake -f images/docker-bake.hcl --push
//
// or `make images` / scripts/build-images.sh. The single-user images' tags are the
// catalog's container_image references (hub_config/studiohub/catalog.yaml) with REGISTRY
// in front when it is set; all of them are built by images/singleuser/Dockerfile from
// the arguments below.

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

group "default" {
  targets = ["hub", "cpu", "gpu"]
}

group "cpu" {
  targets = ["base-cpu", "tensorflow-cpu", "pytorch-cpu", "mxnet-cpu"]
}

group "gpu" {
  targets = ["tensorflow-gpu", "pytorch-gpu", "mxnet-gpu"]
}

target "hub" {
  inherits   = ["_studiohub"]
  dockerfile = "images/hub/Dockerfile"
  tags       = [tag("studiohub/hub")]
}

target "base-cpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/singleuser/Dockerfile"
  tags       = [tag("studiohub/base-cpu")]
  args = {
    ACCELERATOR  = "cpu"
    BASE_IMAGE   = "debian:12.11-slim"
    IMAGE_ID     = "base"
    REQUIREMENTS = "base-cpu/requirements.txt"
    IMPORTS      = "ipykernel"
  }
}

target "tensorflow-cpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/singleuser/Dockerfile"
  tags       = [tag("studiohub/tensorflow-cpu")]
  args = {
    ACCELERATOR  = "cpu"
    BASE_IMAGE   = "debian:12.11-slim"
    IMAGE_ID     = "tensorflow"
    REQUIREMENTS = "base-cpu/requirements.txt tensorflow-cpu/requirements.txt"
    IMPORTS      = "ipykernel tensorflow"
  }
}

target "pytorch-cpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/singleuser/Dockerfile"
  tags       = [tag("studiohub/pytorch-cpu")]
  args = {
    ACCELERATOR         = "cpu"
    BASE_IMAGE          = "debian:12.11-slim"
    IMAGE_ID            = "pytorch"
    REQUIREMENTS        = "base-cpu/requirements.txt pytorch-cpu/requirements.txt"
    IMPORTS             = "ipykernel torch"
    PIP_EXTRA_INDEX_URL = "https://download.pytorch.org/whl/cpu"
  }
}

target "mxnet-cpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/singleuser/Dockerfile"
  tags       = [tag("studiohub/mxnet-cpu")]
  args = {
    ACCELERATOR  = "cpu"
    BASE_IMAGE   = "debian:12.11-slim"
    IMAGE_ID     = "mxnet"
    REQUIREMENTS = "mxnet-cpu/base-requirements.txt mxnet-cpu/requirements.txt"
    IMPORTS      = "ipykernel mxnet"
    APT_PACKAGES = "libgomp1=12.2.0-14+deb12u1 libquadmath0=12.2.0-14+deb12u1"
  }
}

target "tensorflow-gpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/singleuser/Dockerfile"
  tags       = [tag("studiohub/tensorflow-gpu")]
  args = {
    ACCELERATOR  = "gpu"
    BASE_IMAGE   = "nvidia/cuda:12.9.1-base-ubuntu22.04"
    IMAGE_ID     = "tensorflow-gpu"
    REQUIREMENTS = "base-cpu/requirements.txt tensorflow-gpu/requirements.txt"
    IMPORTS      = "ipykernel tensorflow"
  }
}

target "pytorch-gpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/singleuser/Dockerfile"
  tags       = [tag("studiohub/pytorch-gpu")]
  args = {
    ACCELERATOR  = "gpu"
    BASE_IMAGE   = "nvidia/cuda:13.0.0-base-ubuntu22.04"
    IMAGE_ID     = "pytorch-gpu"
    REQUIREMENTS = "base-cpu/requirements.txt pytorch-gpu/requirements.txt"
    IMPORTS      = "ipykernel torch"
  }
}

target "mxnet-gpu" {
  inherits   = ["_studiohub"]
  dockerfile = "images/singleuser/Dockerfile"
  tags       = [tag("studiohub/mxnet-gpu")]
  args = {
    ACCELERATOR  = "gpu"
    BASE_IMAGE   = "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04"
    IMAGE_ID     = "mxnet-gpu"
    REQUIREMENTS = "mxnet-cpu/base-requirements.txt mxnet-gpu/requirements.txt"
    IMPORTS      = "ipykernel"
    APT_PACKAGES = "libgomp1 libquadmath0"
  }
}
