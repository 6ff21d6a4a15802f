"""The application layer: the one place that owns every audited operation and background duty.

The gateway and its storage (gateway.py), the recording lifecycle (recordings.py), access to
recordings (exports.py, rewrap.py), legal holds (holds.py), subject requests (subject.py),
retention and erasure (retention.py), legacy import (legacy.py), account changes
(accounts.py), the audit log's export (auditlog.py), the background duties of a running node
(duties.py), the exposure scan (exposure.py), and how the service's processes harden
themselves and log (runtime.py).

The CLI, the dashboard, the SIP worker and the supervisor are adapters around it: they parse
input, call it, and render output. None writes an audit entry itself (docs/architecture.md).
"""
