"""The gateway's typed errors. Each carries a one-line message for the person who must act on it;
the command line alone decides what exit code each kind gets (cli/exitcodes.py)."""

from __future__ import annotations


class GatewayError(Exception):
    """A failure the user can act on (a finding, a refusal, a bad argument)."""


class ConfigError(GatewayError):
    pass


class KeyMaterialError(GatewayError):
    """A recipient or identity that is malformed or cannot be read."""


class NotFoundError(GatewayError):
    pass


class StorageError(GatewayError):
    """The store or the index failed (disk full, permissions, out of reach)."""


class InputError(GatewayError):
    """Input files rejected (legacy import)."""


class NotRunningError(GatewayError):
    """No gateway runs on this data directory."""
