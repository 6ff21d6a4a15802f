"""Errors the CLI reports in one line, each with its own exit code (listed in the README)."""

from __future__ import annotations

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


class GatewayError(Exception):
    exit_code = EXIT_FINDINGS


class ConfigError(GatewayError):
    exit_code = EXIT_CONFIG


class KeyError_(GatewayError):
    exit_code = EXIT_KEY


class NotFoundError(GatewayError):
    exit_code = EXIT_NOT_FOUND


class StorageError(GatewayError):
    exit_code = EXIT_STORAGE


class InputError(GatewayError):
    exit_code = EXIT_INPUT


class NotRunningError(GatewayError):
    exit_code = EXIT_NOT_RUNNING
