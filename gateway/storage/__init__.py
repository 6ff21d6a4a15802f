"""Where the gateway keeps things: the index of calls, recordings, receipts, holds and the
hash-chained audit log (index.py on SQLite, index_pg.py on PostgreSQL, journal.py while the
shared one is away, audit.py, migrate.py), the ciphertext store (spool.py, s3.py, store.py,
uploader.py), sealed personal data (pii.py), and the data directory's lock and liveness."""
