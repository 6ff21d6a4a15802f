"""import-legacy: a plaintext archive like 1177's medicall/YYYY/MM/DD/ tree, migrated."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway import age
from gateway.app.legacy import LegacyImporter
from gateway.cli import exitcodes
from gateway.recording import wav
from gateway.storage.rows import RecordingRow, RecordingStatus
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
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "s16le",
            "-ar",
            "8000",
            "-ac",
            "1",
            "-i",
            "pipe:0",
            "-codec:a",
            "libmp3lame",
            str(day / "call2.mp3"),
        ],
        input=CANARY,
        check=True,
    )
    (day / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    (day / "fake.mp3").write_text("this is not audio\n")
    (day / "notes.txt").write_text("call log\n")
    for p in day.iterdir():
        os.utime(p, (MTIME, MTIME))
    return tmp_path / "medicall"


@pytest.fixture
def tgw(tmp_path: Path) -> GatewayUnderTest:
    return make_gateway(tmp_path)


def legacy_rows(tgw: GatewayUnderTest) -> dict[str, RecordingRow]:
    gw = tgw.open()
    key = age.load_identity_file(tgw.key)
    return {
        Path(age.decrypt(r.source_enc, key).decode()).name: r
        for r in gw.index.list_recordings(RecordingStatus.COMPLETE)
        if r.origin == "legacy"
    }


def test_import_export_resume(tgw: GatewayUnderTest, archive: Path, tmp_path: Path, capsys) -> None:
    assert tgw.run("import-legacy", str(archive)) == exitcodes.EXIT_INPUT  # some files were rejected
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
    assert (
        tgw.run(
            "recordings", "export", rows["call2.mp3"].id, "-i", str(tgw.key), "-o", str(tmp_path / "conv.wav")
        )
        == 0
    )
    assert wav.parse_header((tmp_path / "conv.wav").read_bytes()).sample_rate == 8000
    # Running again imports nothing twice.
    capsys.readouterr()
    assert tgw.run("import-legacy", str(archive)) == exitcodes.EXIT_INPUT
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

    broken = LegacyImporter(
        DiesAfterTwoAppends(gw.store),
        gw.index,
        gw.config.recording.recipients,
        "test",
        node=gw.config.node.name,
    )
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
    t = traced_run(
        [
            str(ROOT / ".venv/bin/gateway"),
            "--config",
            str(tgw.config),
            "import-legacy",
            "--shred-originals",
            str(archive),
        ],
        cwd=tmp_path,
        trace_file=tmp_path / "t.strace",
    )
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
    assert (
        main(["--config", str(tmp_path / "norec/gateway.toml"), "import-legacy", str(archive)])
        == exitcodes.EXIT_CONFIG
    )
    assert "no recipient" in capsys.readouterr().err


def other_audio(seconds: float = 0.5) -> bytes:
    pcm = canary_pcm(int(8000 * seconds), seed=7)
    return wav.header(8000, 1, data_size=len(pcm)) + pcm


def test_a_reused_name_is_imported_before_it_is_shredded(
    tgw: GatewayUnderTest, archive: Path, capsys
) -> None:
    """A legacy system that reuses a file name must not lose the new recording: a path that was
    imported before is recognised by what it holds, not by its name."""
    call1 = archive / "2016/01/01/call1.wav"
    assert tgw.run("import-legacy", str(call1)) == 0
    first = legacy_rows(tgw)["call1.wav"]
    newer = other_audio()
    call1.write_bytes(newer)  # the same name, a new recording never encrypted
    capsys.readouterr()
    assert tgw.run("import-legacy", "--shred-originals", str(call1)) == 0
    assert "imported 1 file(s)" in capsys.readouterr().out
    assert not call1.exists()
    gw = tgw.open()
    key = age.load_identity_file(tgw.key)
    [second] = [
        r
        for r in gw.index.list_recordings(RecordingStatus.COMPLETE)
        if r.origin == "legacy" and r.id != first.id
    ]
    with gw.store.open(second.object_name) as f:
        assert age.AgeReader(f, key).read_all() == newer
    shredded = [e for e in gw.index.audit_entries() if e.action == "legacy.original_shredded"]
    assert [e.subject for e in shredded] == [second.id]
    assert shredded[0].details["bytes"] == len(newer)


def test_shredding_refuses_anything_but_the_exact_file_encrypted(
    tgw: GatewayUnderTest, tmp_path: Path
) -> None:
    from gateway.app.legacy import ShredRefused, SourceFile, shred_exact

    def fingerprint(p: Path) -> SourceFile:
        import hashlib

        st = p.stat()
        return SourceFile(
            st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()
        )

    f = tmp_path / "a.wav"
    f.write_bytes(other_audio())
    seen = fingerprint(f)
    # Same size and mtime, different bytes (an in-place rewrite that kept the mtime).
    data = bytearray(f.read_bytes())
    data[100] ^= 1
    f.write_bytes(bytes(data))
    os.utime(f, ns=(seen.mtime_ns, seen.mtime_ns))
    with pytest.raises(ShredRefused, match="content differs"):
        shred_exact(f, seen)
    # Replaced by another file under the same name (a new inode).
    f.write_bytes(other_audio())
    seen = fingerprint(f)
    g = tmp_path / "b.wav"
    g.write_bytes(other_audio())
    os.replace(g, f)
    with pytest.raises(ShredRefused, match="changed or replaced"):
        shred_exact(f, seen)
    assert f.read_bytes() == other_audio()
    # A symbolic link is never followed.
    target = tmp_path / "target.wav"
    target.write_bytes(other_audio())
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    with pytest.raises(ShredRefused, match="symbolic link"):
        shred_exact(link, fingerprint(target))
    assert target.read_bytes() == other_audio()
    # The exact file: overwritten and gone.
    shred_exact(target, fingerprint(target))
    assert not target.exists()


def test_symlinks_in_an_archive_are_refused_and_their_targets_kept(
    tgw: GatewayUnderTest, archive: Path, tmp_path: Path, capsys
) -> None:
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(other_audio())
    day = archive / "2016/01/01"
    (day / "broken.wav").unlink()
    (day / "fake.mp3").unlink()
    (day / "link.wav").symlink_to(outside)
    assert tgw.run("import-legacy", "--shred-originals", str(archive)) == exitcodes.EXIT_INPUT
    out = capsys.readouterr().out
    assert "link.wav: a symbolic link: not followed" in out and "shredded 2 original(s)" in out
    assert outside.read_bytes() == other_audio()


def test_a_file_still_being_written_is_not_imported(
    tgw: GatewayUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.app import legacy

    f = tmp_path / "growing.wav"
    f.write_bytes(other_audio())
    real = legacy._hash_fd

    def hash_while_the_recorder_appends(fd: int) -> str:
        digest = real(fd)
        with open(f, "ab") as more:
            more.write(b"\x00\x01" * 800)
        return digest

    monkeypatch.setattr(legacy, "_hash_fd", hash_while_the_recorder_appends)
    gw = tgw.open()
    importer = legacy.LegacyImporter(gw.store, gw.index, gw.config.recording.recipients, "test")
    with pytest.raises(legacy.ChangedWhileReading):
        importer.import_file(f, shred_original=True)
    assert f.exists() and f.stat().st_size == len(other_audio()) + 1600
    assert [r for r in gw.index.list_recordings() if r.status == RecordingStatus.COMPLETE] == []


def test_imports_past_retention_are_announced_and_can_be_kept(
    tgw: GatewayUnderTest, archive: Path, capsys
) -> None:
    """The archive is from 2016: with the default 90 days, the next retention run would delete
    every import at once. The operator is told before and after, and can keep them."""
    day = archive / "2016/01/01"
    (day / "broken.wav").unlink()
    (day / "fake.mp3").unlink()
    assert tgw.run("import-legacy", str(archive)) == 0
    io = capsys.readouterr()
    assert "2 of these files are older than their retention (90 days)" in io.err
    assert "2 imported recording(s) are past their retention" in io.out
    # Keeping them: again with a longer retention (applies to what was already imported).
    assert tgw.run("import-legacy", "--retention-days", "5000", str(archive)) == 0
    io = capsys.readouterr()
    assert "skipped 2 already imported" in io.out and "past their retention" not in io.out
    assert tgw.run("retention", "run") == 0
    assert {r.status for r in legacy_rows(tgw).values()} == {RecordingStatus.COMPLETE}
    # Or on hold.
    other = archive.parent / "more"
    other.mkdir()
    f = other / "x.wav"
    f.write_bytes(wav.header(8000, 1, data_size=len(CANARY)) + CANARY)
    os.utime(f, (MTIME, MTIME))
    assert tgw.run("import-legacy", "--hold", "archive under review", str(other)) == 0
    io = capsys.readouterr()
    assert "older than their retention" not in io.err and "held 1 imported recording(s)" in io.err
    assert tgw.run("retention", "run") == 0
    assert len([r for r in legacy_rows(tgw).values() if r.status == RecordingStatus.COMPLETE]) == 3
