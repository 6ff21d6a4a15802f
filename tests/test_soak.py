"""A minute of bench/soak.py in CI (whose code it runs): sipp callers of four kinds with churn
through the node (consent, decline by key, *9 withdrawal half-way, hang-up in the notice). Every
call completes; every consenting call has a complete recording that decrypts; every withdrawn
call's recording is discarded; nothing declined or abandoned is recorded; the node's memory,
descriptors and threads are sampled through the run."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

from tests.calls import ROOT
from tests.conftest import require_tool

pytestmark = pytest.mark.slow


def _bench():
    spec = importlib.util.spec_from_file_location("soak", ROOT / "bench" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_minute_of_churned_calls_of_every_kind_loses_nothing(tmp_path: Path) -> None:
    require_tool("kamailio")
    require_tool("sipp")
    bench = _bench()
    args = argparse.Namespace(
        minutes=1.0, calls=8, hold=6.0, workers=4, sample_s=10.0, warmup=0.2, verify=1000
    )
    out = bench.soak(args, tmp_path)
    verdict = out["verdict"]
    assert out["gateway_exit"] == 0, out["node_warnings"]
    assert verdict["calls_failed"] == 0, out["calls"]
    assert verdict["consented_calls"] >= 10 and verdict["withdrawn_calls"] >= 2, out["calls"]
    assert out["calls"]["decline"]["ok"] >= 2 and out["calls"]["notice_hangup"]["ok"] >= 2, out["calls"]
    assert verdict["recordings_lost"] == 0 and verdict["recordings_not_decrypting"] == 0, out["recordings"]
    assert verdict["withdrawn_with_audio_kept"] == 0 and verdict["declined_or_abandoned_recorded"] == 0, out
    # The receipts say what each caller did, one receipt per call.
    kinds = out["outcomes"]
    assert kinds["silence"] == verdict["consented_calls"] and kinds["withdrawn"] == verdict["withdrawn_calls"]
    assert kinds["declined"] == out["calls"]["decline"]["ok"]
    assert kinds["abandoned"] == out["calls"]["notice_hangup"]["ok"]
    assert kinds["calls"] == sum(c["ok"] for name, c in out["calls"].items() if name != "pbx_answered")
    # The PBX is dialled for every call decided (the declined ones too, unrecorded), never for
    # a caller who hung up in the notice.
    assert out["calls"]["pbx_answered"]["ok"] == kinds["silence"] + kinds["withdrawn"] + kinds["declined"]
    # Recordings keep up with their calls: under 100 ms missing of these ~6 s calls.
    assert out["recordings"]["frames_missing_percent_max"] < 2.5, out["recordings"]
    samples = out["samples"]
    assert len(samples) >= 5 and all(s["rss_mb"] > 0 and s["threads"] > 0 and s["fds"] > 0 for s in samples)
    assert any(s["live_calls"] for s in samples if s["load"])
