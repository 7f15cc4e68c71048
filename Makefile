# The two set-up commands of the README:
#   make up     install everything, then run StudioHub
#   make test   install everything (plus test tools), then run every check and test
#
# As root this is a system install in /opt/studiohub serving every unix user; as
# anyone else, a personal hub in ~/.local/share/studiohub. The hub environment is
# made from Debian's /usr/bin/python3 because every user's server runs from it.

SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
PREFIX ?= $(if $(filter 0,$(shell id -u)),/opt/studiohub,$(HOME)/.local/share/studiohub)
HUB := $(PREFIX)/hub
PIP := $(HUB)/bin/pip --disable-pip-version-check -q
# The long installs show what pip collects, builds and installs, one line per step.
PIP_INSTALL := scripts/pip-install.sh $(HUB)/bin/pip
export STUDIOHUB_PREFIX := $(PREFIX)

.PHONY: up test require-root install install-test hub-env system-deps test-system-deps lint pytest images

up: install
	$(HUB)/bin/studiohub up

test: require-root install-test lint pytest
# Under make test a skip fails the run with its reason (tests/conftest.py).
test: export PYTEST_REQUIRE_ALL := 1

# The integration and browser tests create unix accounts and cgroups: as anyone else
# they would all be skipped, and a green run would prove little.
require-root:
	@test "$$(id -u)" = 0 || { echo "make test must run as root (sudo make test): its \
	integration and browser tests create unix accounts and cgroups." >&2; exit 1; }

install: system-deps hub-env
	@echo "Installing StudioHub into $(HUB) (its wheel build compiles the Lab extension: a few minutes)"
	@$(PIP_INSTALL) .

# The same install plus the test tools, in one pip run.
install-test: test-system-deps hub-env
	@echo "Installing StudioHub and its test tools into $(HUB) (a few minutes)"
	@$(PIP_INSTALL) ".[test,kubernetes]"

hub-env:
	@test -x $(HUB)/bin/python || $(PYTHON) -m venv $(HUB)
	$(PIP) install --upgrade pip

# Debian packages: Node.js for the proxy (and building the Lab extension); on x86_64,
# GCC's OpenMP and quad-math runtimes, which the MXNet wheel (x86_64 only) links.
MXNET_LIBS := $(if $(filter x86_64,$(shell uname -m)),\
  /usr/lib/x86_64-linux-gnu/libgomp.so.1:libgomp1 \
  /usr/lib/x86_64-linux-gnu/libquadmath.so.0:libquadmath0)

system-deps:
	@scripts/apt-install.sh node:nodejs npm:npm $(PYTHON):python3-venv $(MXNET_LIBS)
	@scripts/apt-install.sh slirp4netns:slirp4netns /usr/sbin/haproxy:haproxy  # jobs' outbound network; endpoints' balancer
	@scripts/check-node.sh

# Tests also need Debian's Chromium (Playwright drives it) and PostgreSQL 15.
test-system-deps: system-deps
	@scripts/apt-install.sh chromium:chromium /usr/lib/postgresql/15/bin/initdb:postgresql

LAB := extensions/studiohub-lab

lint:
	$(HUB)/bin/ruff check hub_config extensions/studiohub-lab/studiohub_lab tests benchmarks
	cd hub_config && $(HUB)/bin/mypy -p studiohub
	cd $(LAB) && $(HUB)/bin/mypy --config-file ../../pyproject.toml -p studiohub_lab
	cd $(LAB) && PATH=$(HUB)/bin:$$PATH jlpm install --immutable >/dev/null \
	  && PATH=$(HUB)/bin:$$PATH jlpm lint:check && PATH=$(HUB)/bin:$$PATH jlpm test

pytest:
	$(HUB)/bin/python -m pytest -p no:cacheprovider -rs $(PYTEST_ARGS)

# The container images (images/docker-bake.hcl, docs/images.md); needs Docker with Buildx.
#   make images REGISTRY=ghcr.io/acme PUSH=1    all of them, pushed; IMAGES=cpu: some
images:
	scripts/build-images.sh $(if $(PUSH),--push) $(IMAGES)
