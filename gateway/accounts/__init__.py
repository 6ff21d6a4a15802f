"""Who may use the gateway's web side: accounts (names, roles, argon2id password hashes,
lockout) and login sessions, in SQLite on one node or in the shared PostgreSQL index. Kept
below the application layer, which administers them (audited), and the dashboard, which logs
people in with them; the cluster checks a command's session here too."""
