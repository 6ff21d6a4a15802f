"""The operators dashboard: live calls, roles, audited actions (served by the node supervisor)."""
