#!/usr/bin/env bash
# The gateway's demo, after installing what it needs. Extra arguments go to `gateway demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# --wait: time to open the printed dashboard address before the calls start; --linger: the
# dashboard stays up after them (Ctrl-C ends it sooner).
exec .venv/bin/gateway demo --wait 15 --linger 120 "$@"
