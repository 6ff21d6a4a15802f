"""Placeholder replaced by the real CLI in the next commit."""


def main() -> int:
    raise SystemExit("gateway: CLI not built yet")
