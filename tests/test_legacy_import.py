"""import-legacy: a plaintext archive like 1177's medicall/YYYY/MM/DD/ tree, migrated."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway import age, errors
from gateway.recording import wav
from gateway.recording.legacy import LegacyImporter
from gateway.storage import index as ix
from gateway.storage.store import StoreError
from tests.gw import GatewayUnderTest, make_gateway
from tests.harness.plaintext import canary_pcm, find_plaintext, non_age_files, traced_run

ROOT = Path(__file__).resolve().parent.parent
CANARY = canary_pcm()
MTIME = datetime(2016, 1, 1, 9, 30, tzinfo=UTC).timestamp()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    day = tmp_path / "medicall" / "2016" / "01" / "01"
    day.mkdir(parents=True)
    (day / "call1.wav").write_bytes(wav.header(8000, 1, data_size=len(CANARY)) + CANARY)
    subprocess.run(["ffmpeg", "-v", "error", "-f", "s16le", "-ar", "8000", "-ac", "1", "-i", "pipe:0",
                    "-codec:a", "libmp3lame", str(day / "call2.mp3")], input=CANARY, check=True)
    (day / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    (day / "fake.mp3").write_text("this is not audio\n")
    (day / "notes.txt").write_text("call log\n")
    for p in day.iterdir():
        os.utime(p, (MTIME, MTIME))
    return tmp_path / "medicall"


@pytest.fixture
def tgw(tmp_path: Path) -> GatewayUnderTest:
    return make_gateway(tmp_path)


def legacy_rows(tgw: GatewayUnderTest) -> dict[str, ix.RecordingRow]:
    gw = tgw.open()
    key = age.load_identity_file(tgw.key)
    return {Path(age.decrypt(r.source_enc, key).decode()).name: r
            for r in gw.index.list_recordings(ix.COMPLETE) if r.origin == "legacy"}


def test_import_export_resume(tgw: GatewayUnderTest, archive: Path, tmp_path: Path, capsys) -> None:
    assert tgw.run("import-legacy", str(archive)) == errors.EXIT_INPUT  # some files were rejected
    out = capsys.readouterr().out
    assert "imported 2 file(s)" in out and "rejected 2" in out and "ignored 1 non-audio" in out
    assert "broken.wav: corrupt WAV" in out and "fake.mp3: not a WAV or MP3" in out
    rows = legacy_rows(tgw)
    assert set(rows) == {"call1.wav", "call2.mp3"}
    assert rows["call1.wav"].started_at == "2016-01-01T09:30:00Z" and rows["call1.wav"].duration_s == 1.0
    assert rows["call2.mp3"].media_type == "audio/mpeg" and rows["call2.mp3"].duration_s > 0.9
    # The original path is kept only encrypted: not in the index file, not in any object name.
    assert b"medicall" not in (tgw.dir / "index.sqlite3").read_bytes()
    assert non_age_files(tgw.dir / "spool") == []
    # Byte-identical round trip, and conversion through ffmpeg pipes.
    for name, ext in (("call1.wav", ".wav"), ("call2.mp3", ".mp3")):
        out_path = tmp_path / f"out{ext}"
        assert tgw.run("recordings", "export", rows[name].id, "-i", str(tgw.key), "-o", str(out_path)) == 0
        assert out_path.read_bytes() == (archive / "2016/01/01" / name).read_bytes()
    assert tgw.run("recordings", "export", rows["call2.mp3"].id, "-i", str(tgw.key), "-o",
                   str(tmp_path / "conv.wav")) == 0
    assert wav.parse_header((tmp_path / "conv.wav").read_bytes()).sample_rate == 8000
    # Running again imports nothing twice.
    capsys.readouterr()
    assert tgw.run("import-legacy", str(archive)) == errors.EXIT_INPUT
    again = capsys.readouterr().out
    assert "imported 0 file(s)" in again and "skipped 2 already imported" in again
    assert len(legacy_rows(tgw)) == 2


def test_interrupted_file_is_imported_whole_on_the_next_run(tgw: GatewayUnderTest, archive: Path) -> None:
    big = archive / "2016/01/01/long.wav"
    pcm = canary_pcm(400_000)
    big.write_bytes(wav.header(8000, 1, data_size=len(pcm)) + pcm)
    gw = tgw.open()

    class DiesAfterTwoAppends:
        def __init__(self, store):
            self.store = store

        def create(self):
            w = self.store.create()
            real, calls = w.append, [0]

            def append(data: bytes) -> None:
                calls[0] += 1
                if calls[0] > 2:
                    raise StoreError("spool append failed: simulated crash")
                real(data)
            w.append = append
            return w

    broken = LegacyImporter(DiesAfterTwoAppends(gw.store), gw.index, gw.config.recording.recipients,
                            gw.lookup_secret(), "test")
    with pytest.raises(StoreError):
        broken.import_file(big)
    assert len(list(gw.store.names())) == 1
    assert tgw.run("import-legacy", str(big)) == 0
    rows = legacy_rows(tgw)
    assert set(rows) == {"long.wav"}
    assert len(list(gw.store.names())) == 1, "the partial object was removed"
    assert "recording.deleted" in [e.action for e in gw.index.audit_entries()]
    with gw.store.open(rows["long.wav"].object_name) as f:
        assert age.AgeReader(f, age.load_identity_file(tgw.key)).read_all() == big.read_bytes()


def test_shred_originals_traced(tgw: GatewayUnderTest, archive: Path, tmp_path: Path) -> None:
    day = archive / "2016/01/01"
    (day / "broken.wav").unlink()
    (day / "fake.mp3").unlink()
    t = traced_run([str(ROOT / ".venv/bin/gateway"), "--config", str(tgw.config), "import-legacy",
                    "--shred-originals", str(archive)], cwd=tmp_path, trace_file=tmp_path / "t.strace")
    assert t.returncode == 0, t.stderr.decode()
    assert b"shredded 2 original(s)" in t.stdout
    assert sorted(p.name for p in day.iterdir()) == ["notes.txt"]
    # The shredding process wrote over the originals with zeros: no audio was written anywhere.
    assert find_plaintext(t, CANARY) == []
    assert any(p.endswith("call1.wav") for p in t.files_written), "the overwrite pass is in the trace"
    assert len(legacy_rows(tgw)) == 2
    audit = [e.action for e in tgw.open().index.audit_entries()]
    assert audit.count("legacy.original_shredded") == 2


def test_no_recipient_refuses_import(tmp_path: Path, archive: Path, capsys) -> None:
    from gateway.cli import main
    assert main(["init", "--dir", str(tmp_path / "norec")]) == 0
    assert main(["--config", str(tmp_path / "norec/gateway.toml"), "import-legacy", str(archive)]) == errors.EXIT_CONFIG
    assert "no recipient" in capsys.readouterr().err
