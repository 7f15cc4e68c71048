#!/usr/bin/env bash
# Install the Debian package of each COMMAND:PACKAGE pair whose command (or, for an
# absolute path, file) is missing.
# Runs `apt-get update` only when something is missing. Needs root for that.
set -euo pipefail
missing=()
for pair in "$@"; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -e "$cmd" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "error: missing Debian packages ${missing[*]}: run 'sudo apt-get install ${missing[*]}'" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
