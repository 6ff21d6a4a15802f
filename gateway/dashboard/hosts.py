"""Which host names the dashboard answers to (its Host header): a DNS-rebinding page reaches
a loopback dashboard under its own name, which is not on the list. Pure."""

from __future__ import annotations

from ..config import DashboardConfig, is_loopback


def allowed_host_names(config: DashboardConfig) -> frozenset[str]:
    """The names a browser may use for the dashboard (its Host header). A DNS-rebinding page
    reaches a loopback dashboard under its own name; that name is not on this list."""
    if config.server_names:
        return frozenset(n.lower() for n in config.server_names)
    host = config.listen[0].lower()
    names = {host}
    if is_loopback(host):
        names |= {"localhost", "127.0.0.1", "::1"}
    return frozenset(names)


def host_name(header: str) -> str:
    """The name in a Host header, without the port ("[::1]:8080" -> "::1")."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else ""
    name, sep, port = h.rpartition(":")
    return name if sep and port.isdigit() else h
