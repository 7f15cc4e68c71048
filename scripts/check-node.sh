#!/usr/bin/env bash
# Refuse early, with what to do, when Node.js is older than what StudioHub builds and
# runs with: JupyterLab's extension builder needs ^20.19.0 || >=22.12.0, and
# configurable-http-proxy 5 needs 20 or newer. (Debian 12's own nodejs package is 18.)
set -euo pipefail
version=$(node --version 2>/dev/null || true)
if [[ $version =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
  major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
  if (( (major == 20 && minor >= 19) || (major == 22 && minor >= 12) || major > 22 )); then
    exit 0
  fi
fi
printf '%s\n' >&2 \
  "error: StudioHub needs Node.js 20.19+ or 22.12+ (or newer) to build its JupyterLab" \
  "extension and to run configurable-http-proxy; found ${version:-no node on PATH}." \
  "Install a newer Node.js (NodeSource's Debian packages, or the official binaries from" \
  "nodejs.org) so that \`node --version\` prints it, then run the make command again."
exit 1
