"""Product rule 1: no plaintext audio on disk, proved by tracing every file the process tree writes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from gateway import age
from gateway.recording import wav
from tests.conftest import require_tool
from tests.gw import GatewayUnderTest, make_gateway
from tests.harness.plaintext import (
    Trace,
    audio_signature,
    canary_pcm,
    changed_since,
    contains_canary,
    find_plaintext,
    non_age_files,
    snapshot,
    traced_run,
)

ROOT = Path(__file__).resolve().parent.parent
CANARY = canary_pcm()


@pytest.fixture(autouse=True)
def _strace() -> None:
    require_tool("strace")


def run_python(code: str, tmp_path: Path):
    return traced_run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, trace_file=tmp_path / "t.strace"
    )


# -- the harness can fail --------------------------------------------------------------------


def test_harness_catches_a_plaintext_wav(tmp_path: Path) -> None:
    t = run_python(
        f"""
        from tests.harness.plaintext import canary_pcm
        from gateway.recording import wav
        open({str(tmp_path / "leak.wav")!r}, 'wb').write(wav.header(8000, 1) + canary_pcm())
    """,
        tmp_path,
    )
    assert t.returncode == 0, t.stderr
    kinds = {f.what for f in find_plaintext(t, CANARY) if f.path.endswith("leak.wav")}
    assert kinds == {
        "canary audio in bytes written",
        "RIFF audio written",
        "canary audio in the file on disk",
        "file on disk is RIFF audio",
    }


def test_harness_catches_a_deleted_temp_file_holding_stereo(tmp_path: Path) -> None:
    t = run_python(
        f"""
        import os, numpy as np
        from tests.harness.plaintext import canary_pcm
        left = np.frombuffer(canary_pcm(), dtype='<i2')
        stereo = np.stack([np.zeros_like(left), left], axis=1).astype('<i2').tobytes()
        p = {str(tmp_path / "tmpXYZ")!r}
        with open(p, 'wb') as f:
            f.write(b'xyz' + stereo)   # misaligned on purpose
        os.unlink(p)
    """,
        tmp_path,
    )
    assert [f.what for f in find_plaintext(t, CANARY)] == ["canary audio in bytes written"]


def test_harness_catches_an_mp3_and_ignores_pipes(tmp_path: Path) -> None:
    t = run_python(
        f"""
        import sys
        from tests.harness.plaintext import canary_pcm
        open({str(tmp_path / "x.mp3")!r}, 'wb').write(b'ID3\\x04\\x00\\x00\\x00\\x00\\x00\\x00')
        sys.stdout.buffer.write(canary_pcm())
    """,
        tmp_path,
    )
    assert contains_canary(t.stdout, CANARY)
    assert [(Path(f.path).name, f.what) for f in find_plaintext(t, CANARY)] == [
        ("x.mp3", "ID3 audio written"),
        ("x.mp3", "file on disk is ID3 audio"),
    ]


@pytest.mark.parametrize("how", ["sendfile", "copy_file_range", "splice", "shared mmap"])
def test_harness_catches_data_that_never_passes_through_a_write(tmp_path: Path, how: str) -> None:
    """Bytes moved by the kernel (or stored through a shared mapping) are not in the trace: the
    harness must read those files from disk."""
    source = tmp_path / "source.wav"  # made before the traced run: only the copy is traced
    source.write_bytes(wav.header(8000, 1) + CANARY)
    out = tmp_path / "out" / "copy.wav"
    out.parent.mkdir()
    code = {
        "sendfile": f"""
            import os
            src, dst = os.open({str(source)!r}, os.O_RDONLY), os.open({str(out)!r}, os.O_WRONLY | os.O_CREAT, 0o600)
            os.sendfile(dst, src, 0, os.fstat(src).st_size)""",
        "copy_file_range": f"""
            import os
            src, dst = os.open({str(source)!r}, os.O_RDONLY), os.open({str(out)!r}, os.O_WRONLY | os.O_CREAT, 0o600)
            os.copy_file_range(src, dst, os.fstat(src).st_size)""",
        "splice": f"""
            import os
            src, dst = os.open({str(source)!r}, os.O_RDONLY), os.open({str(out)!r}, os.O_WRONLY | os.O_CREAT, 0o600)
            r, w = os.pipe()
            n = os.splice(src, w, 65536)
            os.splice(r, dst, n)""",
        "shared mmap": f"""
            import mmap, os
            data = open({str(source)!r}, 'rb').read()
            fd = os.open({str(out)!r}, os.O_RDWR | os.O_CREAT, 0o600)
            os.ftruncate(fd, len(data))
            m = mmap.mmap(fd, len(data), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            m[:] = data
            m.flush()""",
    }[how]
    t = run_python(code, tmp_path)
    assert t.returncode == 0, t.stderr
    assert t.writes.get(str(out), []) in ([], [b""]), "the bytes are not in the trace"
    kinds = {f.what for f in find_plaintext(t, CANARY) if f.path == str(out)}
    assert kinds == {"canary audio in the file on disk", "file on disk is RIFF audio"}


def test_harness_flags_a_kernel_copy_into_a_file_that_is_gone(tmp_path: Path) -> None:
    source = tmp_path / "source.wav"
    source.write_bytes(wav.header(8000, 1) + CANARY)
    gone = tmp_path / "tmpcopy"
    t = run_python(
        f"""
        import os
        src, dst = os.open({str(source)!r}, os.O_RDONLY), os.open({str(gone)!r}, os.O_WRONLY | os.O_CREAT, 0o600)
        os.sendfile(dst, src, 0, os.fstat(src).st_size)
        os.unlink({str(gone)!r})
    """,
        tmp_path,
    )
    assert [(f.path, f.what) for f in find_plaintext(t, CANARY)] == [
        (str(gone), "data went in by sendfile and the file is gone: it cannot be checked")
    ]


def test_harness_finds_a_container_anywhere_and_files_it_never_saw_written(tmp_path: Path) -> None:
    inner = tmp_path / "bundle.bin"
    t = run_python(
        f"""
        from gateway.recording import wav
        with open({str(inner)!r}, 'wb') as f:
            f.write(b'x' * 1000)
            f.write(wav.header(8000, 1) + bytes(64))   # a silent WAV, not at the first write
    """,
        tmp_path,
    )
    assert {f.what for f in find_plaintext(t, CANARY)} == {"RIFF audio written", "file on disk is RIFF audio"}
    # A file that appears in the watched tree without any write the trace recorded (here: made
    # by this test process, which is not traced) is still checked.
    sneaky = tmp_path / "sneaky.wav"
    before = snapshot([tmp_path])
    sneaky.write_bytes(wav.header(8000, 1) + CANARY)
    changed = changed_since(before, [tmp_path])
    trace = Trace(0, b"", b"", changed=changed)
    assert {f.what for f in find_plaintext(trace, CANARY)} == {
        "canary audio in the file on disk",
        "file on disk is RIFF audio",
    }


def test_ciphertext_does_not_look_like_audio() -> None:
    from gateway import age as age_

    ct = age_.encrypt(wav.header(8000, 2) + CANARY * 200, [age_.Identity.generate().recipient()])
    assert audio_signature(ct) is None and not contains_canary(ct, CANARY)


# -- the gateway ------------------------------------------------------------------------------


@pytest.fixture
def tgw(tmp_path: Path) -> GatewayUnderTest:
    return make_gateway(tmp_path)


def test_recording_a_call_writes_only_ciphertext(tgw: GatewayUnderTest, tmp_path: Path) -> None:
    t = traced_run(
        [sys.executable, "-m", "tests.canary_call", str(tgw.config), "5"],
        cwd=ROOT,
        trace_file=tmp_path / "t.strace",
    )
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
    assert contains_canary(plain[wav.HEADER_SIZE :], CANARY)


def test_export_to_stdout_writes_no_file(tgw: GatewayUnderTest, tmp_path: Path) -> None:
    rec_id = subprocess.run(
        [sys.executable, "-m", "tests.canary_call", str(tgw.config), "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    t = traced_run(
        [
            str(ROOT / ".venv/bin/gateway"),
            "--config",
            str(tgw.config),
            "recordings",
            "export",
            rec_id,
            "-i",
            str(tgw.key),
            "-o",
            "-",
        ],
        cwd=tmp_path,
        trace_file=tmp_path / "t.strace",
    )
    assert t.returncode == 0, t.stderr.decode()
    assert contains_canary(t.stdout, CANARY)
    assert find_plaintext(t, CANARY) == []


@pytest.mark.alone  # a whole node and four phones under strace, in real time: starved beside others
def test_demo_writes_no_plaintext(tmp_path: Path) -> None:
    """The whole live demo (gateway, PBX agent, three callers) under one trace."""
    import warnings

    from gateway.telephony.media import tone

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    heard = audioop.alaw2lin(audioop.lin2alaw(tone(440, 1.0, 8000), 2), 2)
    # A short directory: Kamailio's control socket ends up in it, and a parallel run's tmp_path
    # is deep enough to pass Kamailio's limit on a socket's path (which the demo would refuse).
    short = Path(tempfile.mkdtemp(prefix="gw-"))
    demo = short / "demo"  # the demo makes its own directory
    try:
        t = traced_run(
            [str(ROOT / ".venv/bin/gateway"), "demo", "--dir", str(demo)],
            cwd=tmp_path,
            trace_file=tmp_path / "t.strace",
            timeout=300,
        )
        assert t.returncode == 0, t.stdout.decode()[-2000:] + t.stderr.decode()[-2000:]
        assert b"channel 0 (caller) carries 440 Hz" in t.stdout, t.stdout.decode()[-3000:]
        assert find_plaintext(t, heard) == []
        assert non_age_files(demo / "gateway" / "spool") == []
        # Positive control: the recording, decrypted with the demo's key, holds the tone as heard.
        spool = demo / "gateway" / "spool"
        [obj] = list(spool.iterdir())
        with open(obj, "rb") as f:
            plain = age.AgeReader(f, age.load_identity_file(demo / "operator-key.txt")).read_all()
        assert contains_canary(plain[44:], heard)
    finally:
        shutil.rmtree(short)
