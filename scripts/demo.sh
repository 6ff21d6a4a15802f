#!/usr/bin/env bash
# The gateway's demo, after installing what it needs. Extra arguments go to `gateway demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/gateway demo "$@"
