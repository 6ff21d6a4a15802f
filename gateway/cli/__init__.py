"""`gateway` command line. Every failure is one line on stderr and a documented exit code."""

from __future__ import annotations

import argparse
import os
import pwd
import stat
import sys
from collections.abc import Sequence

from .. import age
from ..app.gateway import Gateway
from ..app.runtime import configure_logging
from ..errors import ConfigError, GatewayError
from .exitcodes import AGE_EXIT_CODES, EXIT_INTERRUPTED, EXIT_STORAGE, exit_code


def actor() -> str:
    """Who runs this command, for the audit log: the real uid and its account name.

    Not `LOGNAME`/`USER`: anyone can set those, and an audit entry must not be attributable to
    someone else at will. The real uid (not the effective one) names who started the command.
    """
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "?"
    return f"cli:{name}(uid={uid})"


def load_identities(path: str) -> list[age.AnyIdentity]:
    """The operator's identity file, with a warning (as ssh gives) when others may read it.
    "-" reads it from stdin (so that a service user can be handed a key it cannot read)."""
    if path == "-":
        return age.parse_identities(sys.stdin.read(1 << 20), source="the identity on stdin")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0  # load_identity_file reports the error
    if stat.S_ISREG(mode) and mode & 0o077:
        print(
            f"gateway: warning: identity file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); anyone who can read it can decrypt every recording: "
            f"chmod 600 {path}",
            file=sys.stderr,
        )
    return age.load_identity_file(path)


# Gateways this command opened: when it ends, each is closed, and what the command wrote to the
# audit log is anchored at once (Gateway.close sends a signed checkpoint to the witnesses).
_opened: list[Gateway] = []


def open_gateway(args: argparse.Namespace, *, service: bool = False, lazy_index: bool = False) -> Gateway:
    if not args.config:
        raise ConfigError("no configuration: pass --config FILE or set GATEWAY_CONFIG")
    gw = Gateway.open(args.config, service=service, lazy_index=lazy_index)
    _opened.append(gw)
    return gw


def _close_opened() -> None:
    while _opened:
        _opened.pop().close()


def build_parser() -> argparse.ArgumentParser:
    from . import audit, demo, governance, init, keygen, legacy, migrate, recordings, run, store, users

    parser = argparse.ArgumentParser(prog="gateway", description="Consent-aware call recording gateway.")
    parser.add_argument(
        "--config",
        default=os.environ.get("GATEWAY_CONFIG"),
        help="configuration file (default: $GATEWAY_CONFIG)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--version", action="version", version=f"gateway {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (init, keygen, run, recordings, audit, governance, legacy, migrate, store, demo, users):
        module.register(sub)
    _common_options(parser)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("consent-gateway")
    except PackageNotFoundError:
        return "(not installed)"


def _common_options(parser: argparse.ArgumentParser) -> None:
    """Every command also takes --config after its name (`gateway status --config FILE`), and
    every --json says what it does."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if "--config" not in child._option_string_actions:
                    child.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                _common_options(child)
        elif "--json" in action.option_strings and not action.help:
            action.help = "machine-readable output: JSON instead of text"


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    args = (parser or build_parser()).parse_args(argv)
    configure_logging(service=args.command in ("run", "worker", "forkserver"), verbose=args.verbose)
    try:
        try:
            return int(args.func(args) or 0)
        finally:
            _close_opened()
    except GatewayError as e:
        print(f"gateway: {e}", file=sys.stderr)
        return exit_code(e)
    except age.AgeError as e:
        for cls, code, prefix in AGE_EXIT_CODES:
            if isinstance(e, cls):
                print(f"gateway: {prefix}{e}", file=sys.stderr)
                return code
        raise
    except BrokenPipeError:
        # The reader went away (`gateway audit show | head`): not an error. Python would still
        # report the pipe when it flushes stdout at exit, so stdout is pointed at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        print(f"gateway: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_STORAGE
    except KeyboardInterrupt:
        print("gateway: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
