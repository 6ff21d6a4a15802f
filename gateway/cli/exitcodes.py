"""The command line's exit codes (listed in the README), and which error gets which.
The library raises typed errors (gateway/errors.py, age.AgeError); only the CLI turns them into
numbers."""

from __future__ import annotations

from .. import age
from ..errors import (
    ConfigError,
    GatewayError,
    InputError,
    KeyMaterialError,
    NotFoundError,
    NotRunningError,
    StorageError,
)

EXIT_OK = 0
EXIT_FINDINGS = 1  # a verification found problems (audit chain, recordings verify)
EXIT_USAGE = 2  # argparse's own code for bad arguments
EXIT_CONFIG = 3
EXIT_KEY = 4  # malformed or unreadable recipient / identity
EXIT_NO_MATCH = 5  # the identity does not open this recording
EXIT_CORRUPT = 6  # ciphertext damaged or tampered
EXIT_TRUNCATED = 7  # recording ends without its final chunk (use --recover)
EXIT_NOT_FOUND = 8
EXIT_STORAGE = 9  # store or index failed (disk full, permissions)
EXIT_INPUT = 10  # input files rejected (import-legacy)
EXIT_NOT_RUNNING = 11  # `gateway status`: no gateway runs on this data directory
EXIT_INTERRUPTED = 130

# The most specific class first.
GATEWAY_EXIT_CODES: list[tuple[type[GatewayError], int]] = [
    (ConfigError, EXIT_CONFIG),
    (KeyMaterialError, EXIT_KEY),
    (NotFoundError, EXIT_NOT_FOUND),
    (StorageError, EXIT_STORAGE),
    (InputError, EXIT_INPUT),
    (NotRunningError, EXIT_NOT_RUNNING),
    (GatewayError, EXIT_FINDINGS),
]

AGE_EXIT_CODES: list[tuple[type[age.AgeError], int, str]] = [
    (age.KeyFormatError, EXIT_KEY, ""),
    (age.NoIdentityMatchError, EXIT_NO_MATCH, "the identity does not open this recording: "),
    (age.TruncatedError, EXIT_TRUNCATED, "recording is truncated (add --recover for the intact part): "),
    (age.AgeError, EXIT_CORRUPT, "recording is damaged or was tampered with: "),
]


def exit_code(e: GatewayError) -> int:
    for cls, code in GATEWAY_EXIT_CODES:
        if isinstance(e, cls):
            return code
    return EXIT_FINDINGS
