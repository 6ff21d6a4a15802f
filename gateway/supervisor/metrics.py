"""Node metrics in the Prometheus text format, gathered from the workers' event streams.

Served on [node] metrics_listen (loopback by default). Counters never carry caller numbers,
display names or audio; labels are fixed words.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..callevents import CallState, EventType, RecordingState

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.calls_started = 0
        self.consent: Counter[str] = Counter()
        self.call_state: dict[str, str] = {}  # live calls only
        self.call_link: dict[str, int] = {}  # live call -> the worker link that reported it
        self.bytes_sealed = 0
        # Live calls' counts (each progress event carries the call's running total), and the
        # sum over the calls that have ended: a per-call table kept for the supervisor's life
        # grew by one entry per recorded call.
        self.frames_overflowed: dict[str, int] = {}
        self.frames_overflowed_ended = 0
        self.storage_errors = 0
        self.recordings_saved = 0
        self.pbx_failures = 0

    def link_lost(self, link: int) -> None:
        """A worker died: its calls are no longer live."""
        for call in [c for c, i in self.call_link.items() if i == link]:
            self.call_link.pop(call, None)
            self.call_state.pop(call, None)
            self._call_over(call)

    def _call_over(self, call: str) -> None:
        self.frames_overflowed_ended += self.frames_overflowed.pop(call, 0)

    def observe(self, event: dict[str, Any], link: int = 0) -> None:
        kind, call = event.get("type"), event.get("call", "")
        if call and (kind == EventType.CALL_STARTED or event.get("snapshot")):
            self.call_link[call] = link
        if kind == EventType.CALL_STATE and event.get("state") == CallState.ENDED:
            self.call_link.pop(call, None)
            self._call_over(call)
        if event.get("snapshot"):
            if event.get("state"):
                self.call_state[call] = event["state"]
            return
        if kind == EventType.CALL_STARTED:
            self.calls_started += 1
            self.call_state[call] = CallState.NOTICE
        elif kind == EventType.CALL_STATE:
            if event.get("state") == CallState.ENDED:
                self.call_state.pop(call, None)
            else:
                self.call_state[call] = event.get("state", "?")
        elif kind == EventType.CALL_CONSENT:
            self.consent[event.get("consent", "?")] += 1
        elif kind == EventType.CALL_PROGRESS:
            self.frames_overflowed[call] = int(event.get("frames_overflowed", 0))
        elif kind == EventType.CALL_RECORDING:
            if event.get("recording") == RecordingState.SAVED:
                self.recordings_saved += 1
                self.bytes_sealed += int(event.get("bytes_sealed", 0))
            elif event.get("recording") == RecordingState.INCOMPLETE:
                self.storage_errors += 1
                self.bytes_sealed += int(event.get("bytes_sealed", 0) or 0)
        elif kind == EventType.CALL_FAILED:
            self.pbx_failures += 1

    def render(self, node: dict[str, Any]) -> str:
        states = Counter(self.call_state.values())
        lines = [
            "# HELP gateway_calls Live calls by state.",
            "# TYPE gateway_calls gauge",
            *(f'gateway_calls{{state="{s}"}} {states.get(s, 0)}' for s in CallState if s != CallState.ENDED),
            "# HELP gateway_calls_started_total Calls answered.",
            "# TYPE gateway_calls_started_total counter",
            f"gateway_calls_started_total {self.calls_started}",
            "# HELP gateway_consent_total Consent outcomes.",
            "# TYPE gateway_consent_total counter",
            *(
                f'gateway_consent_total{{outcome="{o}"}} {self.consent.get(o, 0)}'
                for o in ("granted", "declined", "withdrawn")
            ),
            "# HELP gateway_recording_bytes_sealed_total Ciphertext bytes of finished recordings.",
            "# TYPE gateway_recording_bytes_sealed_total counter",
            f"gateway_recording_bytes_sealed_total {self.bytes_sealed}",
            "# TYPE gateway_recordings_saved_total counter",
            f"gateway_recordings_saved_total {self.recordings_saved}",
            "# HELP gateway_recorder_frames_overflowed_total Frames dropped at the recorder hand-off.",
            "# TYPE gateway_recorder_frames_overflowed_total counter",
            f"gateway_recorder_frames_overflowed_total {self.frames_overflowed_ended + sum(self.frames_overflowed.values())}",
            "# HELP gateway_storage_errors_total Recordings that storage failure ended early.",
            "# TYPE gateway_storage_errors_total counter",
            f"gateway_storage_errors_total {self.storage_errors}",
            "# TYPE gateway_pbx_failures_total counter",
            f"gateway_pbx_failures_total {self.pbx_failures}",
            "# HELP gateway_failopen_total Calls sent to the PBX unrecorded (or refused) for lack of a worker.",
            "# TYPE gateway_failopen_total counter",
            f"gateway_failopen_total {node.get('failopen', 0)}",
            "# TYPE gateway_worker_restarts_total counter",
            f"gateway_worker_restarts_total {sum(w['restarts'] for w in node.get('workers', []))}",
            "# TYPE gateway_kamailio_restarts_total counter",
            f"gateway_kamailio_restarts_total {node.get('kamailio', {}).get('restarts', 0)}",
            "# TYPE gateway_workers_ready gauge",
            f"gateway_workers_ready {sum(1 for w in node.get('workers', []) if w['ready'])}",
            "# TYPE gateway_capacity_calls gauge",
            f"gateway_capacity_calls {node.get('capacity_calls', 0)}",
        ]
        upload = node.get("upload")
        if upload:
            lines += [
                "# HELP gateway_spool_pending_recordings Finished recordings waiting in the spool for the object store.",
                "# TYPE gateway_spool_pending_recordings gauge",
                f"gateway_spool_pending_recordings {upload['pending']}",
                "# TYPE gateway_spool_pending_bytes gauge",
                f"gateway_spool_pending_bytes {upload['pending_bytes']}",
                "# TYPE gateway_recordings_uploaded_total counter",
                f"gateway_recordings_uploaded_total {upload['uploaded']}",
                "# HELP gateway_object_store_up 0 while uploads to the object store fail.",
                "# TYPE gateway_object_store_up gauge",
                f"gateway_object_store_up {0 if upload['failing'] else 1}",
            ]
            if upload.get("latency_p50_s") is not None:
                lines += [
                    "# HELP gateway_upload_latency_seconds End of a recording to durable in the object store (last 1000).",
                    "# TYPE gateway_upload_latency_seconds summary",
                    f'gateway_upload_latency_seconds{{quantile="0.5"}} {upload["latency_p50_s"]}',
                    f'gateway_upload_latency_seconds{{quantile="0.99"}} {upload["latency_p99_s"]}',
                ]
        return "\n".join(lines) + "\n"


def app(metrics: Metrics, node_status: Callable[[], dict[str, Any]]) -> web.Application:
    async def handle(_: web.Request) -> web.Response:
        return web.Response(
            text=metrics.render(node_status()),
            content_type="text/plain",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    application = web.Application()
    application.router.add_get("/metrics", handle)
    return application
