"""Dashboard accounts as the application changes them, from the CLI (`gateway user ...`) or the
dashboard's user page: every change is audited with who made it, and so are logins and lockouts.

`strict`: an audit entry that cannot be written raises (the CLI says so and exits non-zero).
The dashboard is not strict: the change is made, the page must answer, and the failure is
logged loudly instead."""

from __future__ import annotations

import logging
from typing import Any

from ..accounts.users import User, UserStore
from ..storage.index import Index

log = logging.getLogger(__name__)


class Accounts:
    def __init__(self, users: UserStore, index: Index, *, strict: bool = True) -> None:
        self.users = users
        self.index = index
        self.strict = strict

    def _audit(self, actor: str, action: str, subject: str, details: dict[str, Any] | None = None) -> None:
        try:
            self.index.append_audit(actor, action, subject, details or {})
        except Exception:
            if self.strict:
                raise
            log.exception("cannot write the audit entry %s", action)

    # UserError (a bad name, role or password; no such user) leaves the accounts and the log as
    # they were.

    def add(self, actor: str, name: str, role: str, password: str, scope: str = "") -> User:
        """`scope`: the tenants (comma-separated) whose calls the user sees; "": every tenant."""
        user = self.users.add(name, role, password, scope)
        self._audit(
            actor, "user.added", name, {"role": role, **({"scope": user.scope} if user.scope else {})}
        )
        return user

    def set_scope(self, actor: str, name: str, scope: str) -> None:
        self.users.set_scope(name, scope)
        user = self.users.get(name)
        self._audit(actor, "user.scope_changed", name, {"scope": user.scope if user else scope})

    def set_password(self, actor: str, name: str, password: str) -> None:
        self.users.set_password(name, password)
        self._audit(actor, "user.password_set", name)

    def set_role(self, actor: str, name: str, role: str) -> None:
        self.users.set_role(name, role)
        self._audit(actor, "user.role_changed", name, {"role": role})

    def unlock(self, actor: str, name: str) -> None:
        self.users.unlock(name)
        self._audit(actor, "user.unlocked", name)

    def remove(self, actor: str, name: str) -> None:
        self.users.remove(name)
        self._audit(actor, "user.removed", name)

    def logged_in(self, user: User, peer: str) -> None:
        self._audit(f"dashboard:{user.name}", "dashboard.login", user.name, {"role": user.role, "from": peer})

    def locked_out(self, name: str, peer: str) -> None:
        """An account (never a name that is none) was locked by failed logins."""
        self._audit(f"dashboard:{name}", "dashboard.locked", name, {"from": peer})
