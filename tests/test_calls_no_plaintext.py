"""Product rule 1 for calls: the gateway process tree, traced, writes no audio anywhere."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from gateway import age
from tests.calls import CallLab
from tests.harness.plaintext import (
    STRACE_PREFIX,
    Snapshot,
    Trace,
    canary_pcm,
    changed_since,
    contains_canary,
    find_plaintext,
    non_age_files,
    parse_trace,
    snapshot,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

pytestmark = pytest.mark.slow
CANARY_SEED = 0xC0FFEE  # the harness canary's seed: the peer sends exactly canary_pcm()


def canary_as_heard() -> bytes:
    """The canary after G.711 A-law, as the gateway receives it from the caller."""
    return audioop.alaw2lin(audioop.lin2alaw(canary_pcm(8000, seed=CANARY_SEED), 2), 2)


def only_ciphertext_written(lab: CallLab, tmp_path: Path, trace_file: Path, before: Snapshot) -> Trace:
    """Stop the traced gateway, then: no file it wrote holds the canary as the caller's side
    delivered it, the spool holds only age files, and exactly one recording exists, whose
    decrypted audio does hold the canary (the positive control). The parsed trace."""
    assert lab.gateway is not None and lab.gateway.stop() == 0
    trace = Trace(0, b"", b"")
    parse_trace(trace_file, trace)
    trace.changed = changed_since(before, [tmp_path], exclude=str(trace_file))
    heard = canary_as_heard()
    assert find_plaintext(trace, heard) == [], "no file written by the gateway holds audio"
    assert non_age_files(lab.gw.dir / "spool") == []
    gw = lab.gw.open()
    [rec] = gw.index.list_recordings()  # only the consenting call (or session) was recorded
    with gw.store.open(rec.object_name) as f:
        plain = age.AgeReader(f, age.load_identity_file(lab.gw.key)).read_all()
    assert contains_canary(plain[44:], heard), "positive control: the canary reached the recorder"
    return trace


def test_declined_and_consented_calls_write_only_ciphertext(lab: CallLab, tmp_path: Path) -> None:
    trace_file = tmp_path / "gw.strace"
    before = snapshot([tmp_path])
    lab.start_gateway(prefix=[*STRACE_PREFIX, "-o", str(trace_file)])
    pbx = lab.peer("pbx", "--tone", "1000", "--calls", "2", "--timeout", "40")
    declined = lab.peer(
        "caller", "--noise-seed", str(CANARY_SEED), "--digits", "9@0.5", "--hangup-after", "5"
    )
    declined.wait_exit()
    consented = lab.peer("caller", "--noise-seed", str(CANARY_SEED), "--hangup-after", "6")
    consented.wait_exit()
    pbx.wait_exit()
    trace = only_ciphertext_written(lab, tmp_path, trace_file, before)
    assert any(p.startswith(str(lab.gw.dir / "spool")) for p in trace.files_written)


def test_siprec_session_declined_in_the_window_leaves_no_audio_anywhere(lab: CallLab, tmp_path: Path) -> None:
    """A SIPREC session's audio is held in memory during the key window: a refusal leaves
    not one byte of it on disk, a grant leaves only ciphertext (with the canary in it)."""
    lab.gw.set("siprec", "enabled", True)
    lab.gw.set("siprec", "clients", ["127.0.0.1"])
    lab.gw.set("siprec", "window_s", 3)
    trace_file = tmp_path / "gw.strace"
    before = snapshot([tmp_path])
    lab.start_gateway(prefix=[*STRACE_PREFIX, "-o", str(trace_file)])
    target = ("--target", f"sip:srs@127.0.0.1:{lab.sip_port}", "--noise-seed", str(CANARY_SEED))
    declined = lab.peer("siprec", *target, "--digits", "9@2.0", "--hangup-after", "5")
    declined.wait_exit()
    granted = lab.peer("siprec", *target, "--hangup-after", "5")
    granted.wait_exit()
    only_ciphertext_written(lab, tmp_path, trace_file, before)
