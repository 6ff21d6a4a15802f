"""`gateway user add|list|passwd|role|scope|unlock|remove`: dashboard accounts (argon2id hashes).

Passwords are read without echo from the terminal (asked twice), or as one line from stdin
when stdin is not a terminal (for provisioning scripts); never from the command line.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable

from ..accounts.users import ROLES, UserError
from ..app.accounts import Accounts
from ..errors import GatewayError
from . import actor, open_gateway


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="dashboard users: add, list, passwd, role, unlock, remove")
    usub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = usub.add_parser("add", help="add a user (the password is asked without echo)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument(
        "--scope",
        default="",
        metavar="TENANTS",
        help="with [[tenants]]: the tenants (comma-separated) whose calls this user sees; default: all",
    )
    a.set_defaults(func=add)
    ls = usub.add_parser("list", help="users, roles, lockouts")
    ls.set_defaults(func=list_)
    pw = usub.add_parser("passwd", help="set a user's password (also unlocks)")
    pw.add_argument("name")
    pw.set_defaults(func=passwd)
    r = usub.add_parser("role", help="change a user's role")
    r.add_argument("name")
    r.add_argument("role", choices=ROLES)
    r.set_defaults(func=role)
    sc = usub.add_parser("scope", help="limit a user to some tenants' calls ('' for all)")
    sc.add_argument("name")
    sc.add_argument("tenants", metavar="TENANTS", help="comma-separated tenant names, or '' for every tenant")
    sc.set_defaults(func=scope)
    u = usub.add_parser("unlock", help="clear a lockout after failed logins")
    u.add_argument("name")
    u.set_defaults(func=unlock)
    rm = usub.add_parser("remove", help="remove a user")
    rm.add_argument("name")
    rm.set_defaults(func=remove)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise GatewayError("the passwords differ")
        return first
    line = sys.stdin.readline()
    if not line:
        raise GatewayError("no password on stdin")
    return line.rstrip("\r\n")


def _change(args: argparse.Namespace, fn: Callable[[Accounts, str], object]) -> None:
    """Apply one audited change to the accounts (app/accounts.py) as the user running this."""
    gw = open_gateway(args)
    store = gw.user_store()
    try:
        fn(Accounts(store, gw.index), actor())
    except UserError as e:
        raise GatewayError(str(e)) from None
    finally:
        store.close()


def _known_tenants(args: argparse.Namespace, scope: str) -> str:
    """A scope names configured tenants only (a typo would otherwise hide every call)."""
    open_gateway(args).config.tenancy.require(*(t for t in scope.split(",") if t))
    return scope


def add(args: argparse.Namespace) -> int:
    scope = _known_tenants(args, args.scope)
    password = _read_password()
    _change(args, lambda a, who: a.add(who, args.name, args.role, password, scope))
    print(f"added {args.name} ({args.role}{', tenants ' + scope if scope else ''})")
    return 0


def scope(args: argparse.Namespace) -> int:
    tenants = _known_tenants(args, args.tenants)
    _change(args, lambda a, who: a.set_scope(who, args.name, tenants))
    print(f"{args.name} now sees {'tenants ' + tenants if tenants else 'every tenant'}")
    return 0


def passwd(args: argparse.Namespace) -> int:
    password = _read_password()
    _change(args, lambda a, who: a.set_password(who, args.name, password))
    print(f"password set for {args.name}")
    return 0


def role(args: argparse.Namespace) -> int:
    _change(args, lambda a, who: a.set_role(who, args.name, args.role))
    print(f"{args.name} is now {args.role}")
    return 0


def unlock(args: argparse.Namespace) -> int:
    _change(args, lambda a, who: a.unlock(who, args.name))
    print(f"unlocked {args.name}")
    return 0


def remove(args: argparse.Namespace) -> int:
    _change(args, lambda a, who: a.remove(who, args.name))
    print(f"removed {args.name}")
    return 0


def list_(args: argparse.Namespace) -> int:
    store = open_gateway(args).user_store()
    now = time.time()
    users = store.list()
    store.close()
    if not users:
        print("no users (add one: gateway user add NAME --role admin)")
    for u in users:
        locked = f"  LOCKED for {int((u.locked_until - now) // 60) + 1} min" if u.locked_until > now else ""
        last = time.strftime("%Y-%m-%d %H:%M", time.localtime(u.last_login)) if u.last_login else "never"
        scoped = f"  tenants {u.scope}" if u.scope else ""
        print(f"{u.name:20} {u.role:10} last login {last}{scoped}{locked}")
    return 0
