"""A short load test through the node, in CI: sipp callers with G.711 audio and RFC 2833 digits
through Kamailio into the pool, sipp as the PBX. The same two phases as bench/node_load.py
(whose code it runs), with fewer calls: every caller declines, then every caller consents.
Every call completes, the PBX hears each decision, and every recording decrypts whole."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.calls import ROOT, CallLab
from tests.conftest import require_tool

pytestmark = pytest.mark.slow


def _bench():
    spec = importlib.util.spec_from_file_location("node_load", ROOT / "bench" / "node_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_concurrent_sipp_calls_through_the_node_all_complete_and_record_whole(tmp_path: Path) -> None:
    require_tool("kamailio")
    require_tool("sipp")
    bench = _bench()
    lab = CallLab(tmp_path, workers=2)
    lab.gw.config.write_text(lab.gw.config.read_text().replace("grace_s = 1.0", "grace_s = 0.5"))
    try:
        lab.start_gateway()
        declined = bench.phase(lab, "9", 4, 4.0, tmp_path)
        consented = bench.phase(lab, "5", 4, 4.0, tmp_path)
        assert (declined["calls_ok"], declined["calls_failed"]) == (4, 0), declined
        assert (consented["calls_ok"], consented["calls_failed"]) == (4, 0), consented
        assert declined["peak_concurrent"] >= 3 and consented["peak_concurrent"] >= 3
        assert declined["consent_seen_by_pbx"] == ["declined"] and consented["consent_seen_by_pbx"] == [
            "granted"
        ]
        assert lab.gateway.stop() == 0
        done = bench.completeness(lab)
        assert done["recordings"] == 4, done
        # A recording may lack a fixed few tens of ms at its end (the jitter and bridge buffers
        # at hang-up, up to one 40 ms tap frame): under 100 ms of these ~4 s calls. A lost
        # chunk would cost far more.
        assert done["frames_missing_percent_max"] < 2.5, done
        # Audio lost in the middle (a stalled tap, frames the recorder dropped) keeps the length
        # (the recorder fills it with silence), so count the 20 ms frames that hold sipp's
        # speech: a second lost of these calls would be a quarter of their frames.
        assert done["frames_present_percent_min"] >= 90, done
    finally:
        lab.close()
