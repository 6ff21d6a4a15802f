"""Product rule 1: no plaintext audio on disk, proved by tracing every file the process tree writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway import age
from gateway.recording import wav
from tests.conftest import require_tool
from tests.gw import GatewayUnderTest, make_gateway
from tests.harness.plaintext import canary_pcm, contains_canary, find_plaintext, non_age_files, traced_run

ROOT = Path(__file__).resolve().parent.parent
CANARY = canary_pcm()


@pytest.fixture(autouse=True)
def _strace() -> None:
    require_tool("strace")


def run_python(code: str, tmp_path: Path):
    return traced_run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, trace_file=tmp_path / "t.strace")


# -- the harness can fail --------------------------------------------------------------------

def test_harness_catches_a_plaintext_wav(tmp_path: Path) -> None:
    t = run_python(f"""
        from tests.harness.plaintext import canary_pcm
        from gateway.recording import wav
        open({str(tmp_path / 'leak.wav')!r}, 'wb').write(wav.header(8000, 1) + canary_pcm())
    """, tmp_path)
    assert t.returncode == 0, t.stderr
    kinds = {f.what for f in find_plaintext(t, CANARY) if f.path.endswith("leak.wav")}
    assert kinds == {"canary audio in bytes written", "RIFF audio written", "canary audio in the file on disk",
                     "file on disk is RIFF audio"}


def test_harness_catches_a_deleted_temp_file_holding_stereo(tmp_path: Path) -> None:
    t = run_python(f"""
        import os, numpy as np
        from tests.harness.plaintext import canary_pcm
        left = np.frombuffer(canary_pcm(), dtype='<i2')
        stereo = np.stack([np.zeros_like(left), left], axis=1).astype('<i2').tobytes()
        p = {str(tmp_path / 'tmpXYZ')!r}
        with open(p, 'wb') as f:
            f.write(b'xyz' + stereo)   # misaligned on purpose
        os.unlink(p)
    """, tmp_path)
    assert [f.what for f in find_plaintext(t, CANARY)] == ["canary audio in bytes written"]


def test_harness_catches_an_mp3_and_ignores_pipes(tmp_path: Path) -> None:
    t = run_python(f"""
        import sys
        from tests.harness.plaintext import canary_pcm
        open({str(tmp_path / 'x.mp3')!r}, 'wb').write(b'ID3\\x04\\x00\\x00\\x00\\x00\\x00\\x00')
        sys.stdout.buffer.write(canary_pcm())
    """, tmp_path)
    assert contains_canary(t.stdout, CANARY)
    assert [(Path(f.path).name, f.what) for f in find_plaintext(t, CANARY)] == [
        ("x.mp3", "ID3 audio written"), ("x.mp3", "file on disk is ID3 audio")]


# -- the gateway ------------------------------------------------------------------------------

@pytest.fixture
def tgw(tmp_path: Path) -> GatewayUnderTest:
    return make_gateway(tmp_path)


def test_recording_a_call_writes_only_ciphertext(tgw: GatewayUnderTest, tmp_path: Path) -> None:
    t = traced_run([sys.executable, "-m", "tests.canary_call", str(tgw.config), "5"], cwd=ROOT,
                   trace_file=tmp_path / "t.strace")
    assert t.returncode == 0, t.stderr.decode()
    rec_id = t.stdout.decode().strip()
    assert find_plaintext(t, CANARY) == []
    spool = tgw.dir / "spool"
    assert any(p.startswith(str(spool)) for p in t.files_written), "the trace saw the spool being written"
    assert non_age_files(spool) == []
    # Positive control: the canary really went through; the operator's key finds it.
    gw = tgw.open()
    with gw.store.open(gw.index.get_recording(rec_id).object_name) as f:
        plain = age.AgeReader(f, age.load_identity_file(tgw.key)).read_all()
    assert contains_canary(plain[wav.HEADER_SIZE:], CANARY)


def test_export_to_stdout_writes_no_file(tgw: GatewayUnderTest, tmp_path: Path) -> None:
    rec_id = subprocess.run([sys.executable, "-m", "tests.canary_call", str(tgw.config), "3"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.strip()
    t = traced_run([str(ROOT / ".venv/bin/gateway"), "--config", str(tgw.config), "recordings", "export", rec_id,
                    "-i", str(tgw.key), "-o", "-"], cwd=tmp_path, trace_file=tmp_path / "t.strace")
    assert t.returncode == 0, t.stderr.decode()
    assert contains_canary(t.stdout, CANARY)
    assert find_plaintext(t, CANARY) == []


def test_demo_writes_no_plaintext(tmp_path: Path) -> None:
    """The whole live demo (gateway, PBX agent, three callers) under one trace."""
    import warnings

    from gateway.telephony.media import tone
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    heard = audioop.alaw2lin(audioop.lin2alaw(tone(440, 1.0, 8000), 2), 2)
    t = traced_run([str(ROOT / ".venv/bin/gateway"), "demo", "--dir", str(tmp_path / "demo")],
                   cwd=tmp_path, trace_file=tmp_path / "t.strace", timeout=300)
    assert t.returncode == 0, t.stdout.decode()[-2000:] + t.stderr.decode()[-2000:]
    assert b"channel 0 (caller) carries 440 Hz" in t.stdout
    assert find_plaintext(t, heard) == []
    assert non_age_files(tmp_path / "demo" / "gateway" / "spool") == []
    # Positive control: the recording, decrypted with the demo's key, holds the tone as heard.
    spool = tmp_path / "demo" / "gateway" / "spool"
    [obj] = list(spool.iterdir())
    with open(obj, "rb") as f:
        plain = age.AgeReader(f, age.load_identity_file(tmp_path / "demo" / "operator-key.txt")).read_all()
    assert contains_canary(plain[44:], heard)
