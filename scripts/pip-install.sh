#!/usr/bin/env bash
# pip install with its progress shown one line per step, for `make up` and `make test`.
#
#   scripts/pip-install.sh PIP ARG...     e.g. scripts/pip-install.sh /opt/studiohub/hub/bin/pip .
#
# `pip -q` was silent for minutes (the wheel build runs jlpm to build the Lab extension);
# pip's full output is hundreds of lines. Shown here: what pip collects, builds and installs,
# each with the seconds since the start, and a "still working" line when a step has been
# quiet for STUDIOHUB_PIP_HEARTBEAT seconds (30). The full output is kept in a log file,
# whose last lines are printed when pip fails.
set -uo pipefail

pip=$1
shift
heartbeat=${STUDIOHUB_PIP_HEARTBEAT:-30}
log=$(mktemp "${TMPDIR:-/tmp}/studiohub-pip.XXXXXX.log")
start=$SECONDS

echo "pip install $* (full output: $log)"
# Lines worth a user's attention (pip indents the steps of a build); "Requirement already
# satisfied" and download details are left out (a re-run would print one per package).
shown='^ *(Collecting |Processing |Building wheel|Created wheel|Installing build dependencies|Preparing metadata|Getting requirements|Installing collected packages|Successfully installed|Attempting uninstall|ERROR|error)'

# Lines reach the filter as pip writes them (unbuffered); a read that times out is a
# quiet step. The loop ends when pip closes its output.
follow() {
  local line
  while :; do
    if IFS= read -r -t "$heartbeat" line; then
      [[ $line =~ $shown ]] && printf '  [%4ds] %s\n' $((SECONDS - start)) "${line:0:160}"
    elif (($? > 128)); then
      printf '  [%4ds] … still working\n' $((SECONDS - start))
    else
      return 0
    fi
  done
}

PYTHONUNBUFFERED=1 "$pip" install --disable-pip-version-check --progress-bar off "$@" 2>&1 \
  | tee "$log" | follow
status=${PIPESTATUS[0]}
if ((status != 0)); then
  echo "pip failed (exit $status); the end of its output ($log):" >&2
  tail -n 40 "$log" >&2
  exit "$status"
fi
printf '  [%4ds] done\n' $((SECONDS - start))
rm -f "$log"
