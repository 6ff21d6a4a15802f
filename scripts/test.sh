#!/usr/bin/env bash
# The whole test suite, after installing what it needs. Extra arguments go to pytest.
# Tests run side by side in $GATEWAY_TEST_JOBS processes (default 4: most of a test's time is
# calls in real time, not CPU); `-n 0` among the arguments runs them in this one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -n "${GATEWAY_TEST_JOBS:-4}" --dist worksteal "$@"
