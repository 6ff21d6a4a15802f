"""The CLI as an operator uses it: init, list, export, verify, audit verify, and every error."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import stat
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.cli import exitcodes, main
from tests.audio import dominant_frequency
from tests.gw import GatewayUnderTest, make_gateway


@pytest.fixture
def tgw(tmp_path: Path) -> GatewayUnderTest:
    return make_gateway(tmp_path)


def test_init_writes_private_dirs_and_a_loadable_commented_config(tgw: GatewayUnderTest) -> None:
    text = tgw.config.read_text()
    assert tgw.recipient in text and text.count("\n#") > 10
    for sub in ("", "spool", "secrets"):
        assert stat.S_IMODE((tgw.dir / sub).stat().st_mode) == 0o700
    assert stat.S_IMODE((tgw.dir / "secrets" / "signing.key").stat().st_mode) == 0o600
    assert tgw.run("recordings", "list") == 0


def test_init_refuses_a_bad_recipient(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["init", "--dir", str(tmp_path / "x"), "--recipient", "age1notakey"])
    assert code == exitcodes.EXIT_KEY
    assert "--recipient #1 refused" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_init_recognises_a_private_key_and_never_echoes_it(tmp_path: Path, capsys) -> None:
    from gateway import age

    identity = age.Identity.generate().encode()
    assert main(["init", "--dir", str(tmp_path / "gw"), "--recipient", identity]) == exitcodes.EXIT_KEY
    err = capsys.readouterr().err
    assert "private key" in err and "age-keygen -y" in err
    assert identity[15:] not in err and identity[15:].lower() not in err
    assert not (tmp_path / "gw" / "gateway.toml").exists()


def test_init_without_recipient_warns_that_nothing_is_recorded(tmp_path: Path, capsys) -> None:
    assert main(["init", "--dir", str(tmp_path / "x")]) == 0
    assert "will record nothing" in capsys.readouterr().out
    from gateway.app.gateway import Gateway
    from gateway.recording.recorder import RecorderEngine

    gw = Gateway.open(tmp_path / "x" / "gateway.toml")
    assert gw.recording_service(RecorderEngine(start_thread=False)).start("call") is None
    assert list(gw.store.names()) == []


def test_init_refuses_to_overwrite(tgw: GatewayUnderTest) -> None:
    assert main(["init", "--dir", str(tgw.dir), "--recipient", tgw.recipient]) == exitcodes.EXIT_CONFIG


@pytest.mark.parametrize(
    "content,message",
    [
        ("[recording\n", "not valid TOML"),
        ("[paths]\ndata_dir='.'\n[recordng]\n", "did you mean 'recording'"),
        ("[paths]\ndata_dir='.'\n[recording]\nrecipients=['age1bad']\n", "recipients[0]"),
        ("[paths]\ndata_dir='.'\n[recording]\nsample_rate=44100\n", "8000 or 16000"),
        ("[paths]\ndata_dir='.'\n[consent]\nmode='maybe'\n", "opt-out, opt-in"),
        ("[paths]\ndata_dir='.'\n[sip]\nlisten='nowhere'\n", "HOST:PORT"),
        ("[paths]\ndata_dir='.'\n[sip]\nlisten='127.0.0.1:506000'\n", "port 506000 is out of range"),
        (
            "[paths]\ndata_dir='.'\n[recording]\nrecipients=['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA x@y']\n",
            "ssh-ed25519 is an SSH public key",
        ),
        ("[paths]\ndata_dir='.'\n[recording]\nrecipients=['npub1qqqqqqqq']\n", "not an age recipient"),
        (
            "[paths]\ndata_dir='.'\n[index]\nurl='postgresq://gw:secret-pw@db/gw'\n",
            "postgresq://gw:***@db",
        ),
        ("[paths]\ndata_dir='.'\n[recording]\ntap_ptime_ms=30\n", "20, 40, 60, 80 or 100"),
        ("[paths]\ndata_dir='.'\n[node]\nkamailio=true\nworkers=4\nmax_workers=200\n", "use at least 1600"),
        ("[paths]\ndata_dir='.'\n[node]\nworkers=4\nmax_workers=2\n", "max_workers must be 0"),
        ("[paths]\ndata_dir='.'\n[node]\npeers=['node-b:5060']\n", "must be an IP address"),
        # Values that reach Kamailio's configuration: nothing that could break out of a string,
        # no allowlist entry wider than /8, and a DNS name is never "loopback".
        ("[paths]\ndata_dir='.'\n[pbx]\nuri='sip:x@10.0.0.5\";exit;\"'\n", "must be a SIP URI"),
        ("[paths]\ndata_dir='.'\n[pbx]\nuri=\"sip:x@10.0.0.5\\n\"\n", "must be a SIP URI"),
        ("[paths]\ndata_dir='.'\n[pbx]\nuri='sip:$ru@10.0.0.5'\n", "must be a SIP URI"),
        ("[paths]\ndata_dir='.'\n[node]\ntrunks=['0.0.0.0/0']\n", "/8 or narrower"),
        ("[paths]\ndata_dir='.'\n[node]\ntrunks=['10.0.0.0/4']\n", "/8 or narrower"),
        ("[paths]\ndata_dir='.'\n[node]\ntrunks=['0.0.0.0']\n", "not a host or network"),
        ("[paths]\ndata_dir='.'\n[node]\ntrunks=['10.0.0.1\";']\n", "IPv4 address or IP/mask"),
        ("[paths]\ndata_dir='.'\n[sip]\nlisten='example.org:5060'\n", "must be an IP address"),
        ("[paths]\ndata_dir='.'\n[sip]\nlisten=\"127.0.0.1\\nx:5060\"\n", "must be an IP address"),
        ("[paths]\ndata_dir='.'\n[dashboard]\nlisten='127.evil.example:8080'\n", "not a loopback address"),
        ("[paths]\ndata_dir='.'\n[dashboard]\nlisten='0.0.0.0:8443'\n", "not a loopback address"),
        ("[paths]\ndata_dir='.'\n[dashboard]\ntls_cert='x.pem'\n", "go together"),
    ],
)
def test_bad_config_is_one_line_and_exit_3(tmp_path: Path, capsys, content: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    assert main(["--config", str(cfg), "recordings", "list"]) == exitcodes.EXIT_CONFIG
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_and_unreadable_config(tmp_path: Path, capsys) -> None:
    assert main(["--config", str(tmp_path / "none.toml"), "recordings", "list"]) == exitcodes.EXIT_CONFIG
    assert main(["recordings", "list"]) in (exitcodes.EXIT_CONFIG,)
    assert "GATEWAY_CONFIG" in capsys.readouterr().err


def test_audit_actor_is_the_real_uid_not_the_environment(
    tgw: GatewayUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec_id = tgw.record(seconds=1)
    monkeypatch.setenv("LOGNAME", "mallory")
    monkeypatch.setenv("USER", "mallory")
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(tmp_path / "a.wav")) == 0
    entry = tgw.open().index.audit_entries()[-1]
    assert entry.action == "recording.exported"
    assert entry.actor == f"cli:{pwd.getpwuid(os.getuid()).pw_name}(uid={os.getuid()})"


def test_an_identity_file_others_can_read_is_warned_about(
    tgw: GatewayUnderTest, tmp_path: Path, capsys
) -> None:
    rec_id = tgw.record(seconds=1)
    tgw.key.chmod(0o600)
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(tmp_path / "a.wav")) == 0
    assert "warning" not in capsys.readouterr().err
    tgw.key.chmod(0o644)
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(tmp_path / "b.wav")) == 0
    err = capsys.readouterr().err
    assert "accessible by group or others (mode 0644)" in err and f"chmod 600 {tgw.key}" in err
    assert "AGE-SECRET-KEY" not in err


def test_export_audits_what_happened_and_force_makes_a_private_file(
    tgw: GatewayUnderTest, tmp_path: Path, capsys
) -> None:
    rec_id = tgw.record(seconds=1)
    existing = tmp_path / "existing.wav"
    existing.write_bytes(b"the operator's other file")
    existing.chmod(0o644)
    assert (
        tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(existing))
        == exitcodes.EXIT_FINDINGS
    )
    assert existing.read_bytes() == b"the operator's other file"
    actions = [e.action for e in tgw.open().index.audit_entries() if e.subject == rec_id]
    assert "recording.export_refused" in actions and "recording.exported" not in actions
    # --force replaces it with a new file only its owner can read, not a truncated 0644 one.
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(existing), "--force") == 0
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600 and existing.read_bytes()[:4] == b"RIFF"
    assert [e.action for e in tgw.open().index.audit_entries() if e.subject == rec_id][
        -1
    ] == "recording.exported"
    # Never through a symbolic link, forced or not.
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep")
    link = tmp_path / "link.wav"
    link.symlink_to(target)
    for force in ([], ["--force"]):
        assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(link), *force) != 0
    assert target.read_text() == "keep" and link.is_symlink()


@pytest.mark.parametrize("command", ["recordings export", "subject export"])
def test_commands_that_hold_plaintext_cannot_dump_core(
    tgw: GatewayUnderTest, tmp_path: Path, command: str
) -> None:
    """`recordings export` and `subject export` stream whole plaintexts: like `gateway run`, they
    forbid core dumps and are not dumpable (no same-user ptrace)."""
    import sys

    rec_id = tgw.record(seconds=1, number="+46701234567")
    args = (
        ["recordings", "export", rec_id, "-o", "-"]
        if command == "recordings export"
        else ["subject", "export", "--number", "+46701234567", "-o", str(tmp_path / "req")]
    )
    code = f"""
import ctypes, resource, sys
from gateway.cli import main
rc = main(["--config", {str(tgw.config)!r}, *{args!r}, "-i", {str(tgw.key)!r}])
print(rc, resource.getrlimit(resource.RLIMIT_CORE), ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), file=sys.stderr)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=Path(__file__).parent.parent)
    err = res.stderr.decode()
    assert err.strip().splitlines()[-1] == "0 (0, 0) 0", err


def test_output_piped_into_head_ends_quietly(tgw: GatewayUnderTest) -> None:
    import sys

    gw = tgw.open()
    for i in range(3000):
        gw.index.append_audit("test", "test.entry", str(i), {"padding": "x" * 100})
    gw.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(tgw.config), "audit", "show"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == b"", err


def test_export_wav_has_both_parties_and_is_audited(tgw: GatewayUnderTest, tmp_path: Path) -> None:
    rec_id = tgw.record(seconds=3)
    out = tmp_path / "call.wav"
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(out)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 24000)
        s = np.frombuffer(w.readframes(24000), dtype="<i2")
    assert abs(dominant_frequency(s[0::2]) - 440) < 5 and abs(dominant_frequency(s[1::2]) - 1000) < 5
    entries = tgw.open().index.audit_entries()
    assert [e.action for e in entries if e.subject == rec_id][-1] == "recording.exported"
    assert entries[-1].actor.startswith("cli:")


@pytest.mark.parametrize("ext", [".mp3", ".opus"])
def test_export_compressed_through_pipes(tgw: GatewayUnderTest, tmp_path: Path, ext: str) -> None:
    rec_id = tgw.record(seconds=2)
    out = tmp_path / f"call{ext}"
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(out)) == 0
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,channels", "-of", "json", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream["channels"] == 2 and stream["codec_name"] in ("mp3", "opus")


def test_export_errors_have_distinct_exit_codes(tgw: GatewayUnderTest, tmp_path: Path, capsys) -> None:
    rec_id = tgw.record(seconds=1)
    out = str(tmp_path / "o.wav")
    other = tmp_path / "other.txt"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    assert tgw.run("recordings", "export", rec_id, "-i", str(other), "-o", out) == exitcodes.EXIT_NO_MATCH
    (tmp_path / "garbage.txt").write_text("AGE-SECRET-KEY-1XYZ\n")
    assert (
        tgw.run("recordings", "export", rec_id, "-i", str(tmp_path / "garbage.txt"), "-o", out)
        == exitcodes.EXIT_KEY
    )
    assert (
        tgw.run("recordings", "export", "nosuchid", "-i", str(tgw.key), "-o", out) == exitcodes.EXIT_NOT_FOUND
    )
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", str(tmp_path / "o.flac")) == 1
    assert not Path(out).exists()
    # Tamper with one byte of the ciphertext: refused, and no half-written plaintext is left.
    gw = tgw.open()
    obj = gw.config.paths.spool_dir / gw.index.get_recording(rec_id).object_name
    data = bytearray(obj.read_bytes())
    data[-5] ^= 0x40
    obj.write_bytes(bytes(data))
    assert tgw.run("recordings", "export", rec_id, "-i", str(tgw.key), "-o", out) == exitcodes.EXIT_CORRUPT
    assert not Path(out).exists()
    err = capsys.readouterr().err
    assert all(line.startswith("gateway: ") for line in err.strip().splitlines())


def test_verify_finds_altered_missing_and_orphan_objects(tgw: GatewayUnderTest, capsys) -> None:
    a, b = tgw.record(seconds=1), tgw.record(seconds=1)
    assert tgw.run("recordings", "verify") == 0
    gw = tgw.open()
    spool = gw.config.paths.spool_dir
    obj_a = spool / gw.index.get_recording(a).object_name
    obj_a.write_bytes(obj_a.read_bytes() + b"x")
    (spool / gw.index.get_recording(b).object_name).unlink()
    (spool / ("ab" * 16 + ".age")).write_bytes(b"hello")
    capsys.readouterr()
    assert tgw.run("recordings", "verify") == exitcodes.EXIT_FINDINGS
    out = capsys.readouterr().out
    assert f"{a}: size" in out and "hash differs" in out
    assert f"{b}: object missing" in out
    assert "has no index row" in out


def test_list_json_has_metadata_only(tgw: GatewayUnderTest, capsys) -> None:
    rec_id = tgw.record(seconds=1)
    capsys.readouterr()
    assert tgw.run("recordings", "list", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["id"] == rec_id and row["status"] == "complete" and row["duration_s"] == 1.0
    assert "object_name" not in row and "source_enc" not in row


def tamper(tgw: GatewayUnderTest, sql: str) -> None:
    db = sqlite3.connect(tgw.dir / "index.sqlite3")
    db.execute(sql)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    "sql,kind,seq",
    [
        ("UPDATE audit SET actor='someone-else' WHERE seq=3", "edited", 3),
        ("DELETE FROM audit WHERE seq=2", "deleted", 3),
        ("UPDATE audit SET seq=seq+100 WHERE seq=2; ", "reordered", 3),
    ],
)
def test_audit_verify_names_the_first_broken_entry(
    tgw: GatewayUnderTest, capsys, sql: str, kind: str, seq: int
) -> None:
    tgw.record(seconds=1)
    tgw.record(seconds=1)
    assert tgw.run("audit", "verify") == 0
    tamper(tgw, sql)
    capsys.readouterr()
    assert tgw.run("audit", "verify", "--json") == exitcodes.EXIT_FINDINGS
    problem = json.loads(capsys.readouterr().out)["problem"]
    assert problem["kind"] == kind and problem["seq"] == seq


def test_root_does_not_write_into_the_service_users_data_directory(
    tgw: GatewayUnderTest, tmp_path: Path, capsys
) -> None:
    """`gateway user add` run as root once left users.sqlite3 owned by root, and the service
    could not start. Root is told to run the command as the gateway's user instead."""
    import os as os_

    if os_.geteuid() != 0:
        pytest.fail("this test checks what root may do: run the suite as root (CI does)")
    rec = tgw.record(1)
    os_.chown(tgw.dir, 65534, 65534)
    try:
        assert tgw.run("recordings", "list") == exitcodes.EXIT_CONFIG
        err = capsys.readouterr().err
        assert "belongs to nobody, not root" in err and "runuser -u nobody --" in err and "-i - -o -" in err
        assert not (tgw.dir / "secrets" / "users.sqlite3").exists()
    finally:
        os_.chown(tgw.dir, 0, 0)
    # The identity can come on stdin (for a service user who may not read the operator's key).
    res = subprocess.run(
        [
            str(Path(__file__).parent.parent / ".venv/bin/gateway"),
            "--config",
            str(tgw.config),
            "recordings",
            "export",
            rec,
            "-i",
            "-",
            "-o",
            "-",
        ],
        input=tgw.key.read_bytes(),
        capture_output=True,
    )
    assert res.returncode == 0 and res.stdout[:4] == b"RIFF", res.stderr


def test_init_makes_the_cluster_key_for_the_first_node_and_takes_it_for_the_next(
    tmp_path: Path, pg_url: str, identity_file: tuple[Path, str], capsys
) -> None:
    _, recipient = identity_file
    first, second = tmp_path / "a", tmp_path / "b"
    common = ["--recipient", recipient, "--index-url", pg_url, "--workers", "1"]
    assert main(["init", "--dir", str(first), *common]) == 0
    key = first / "secrets" / "cluster.key"
    assert key.stat().st_mode & 0o777 == 0o600 and "made the cluster key" in capsys.readouterr().out
    assert main(["init", "--dir", str(second), *common, "--cluster-key", str(key)]) == 0
    assert (second / "secrets" / "cluster.key").read_text() == key.read_text()
    assert (second / "secrets" / "cluster.key").stat().st_mode & 0o777 == 0o600
    (tmp_path / "bad.key").write_text("not a key\n")
    capsys.readouterr()
    assert main(
        ["init", "--dir", str(tmp_path / "c"), *common, "--cluster-key", str(tmp_path / "bad.key")]
    ) == (exitcodes.EXIT_KEY)
    assert "is not a cluster key" in capsys.readouterr().err
    assert main(["init", "--dir", str(tmp_path / "d"), "--cluster-key", str(key)]) == exitcodes.EXIT_CONFIG


def test_the_command_line_reads_as_documented(tgw: GatewayUnderTest, capsys) -> None:
    """Issue 28.15: --version; --config also after the command; internal commands not listed;
    every --json says what it does; `run --help` describes it."""
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("gateway ")
    assert main(["recordings", "list", "--config", str(tgw.config)]) == 0
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert "recordings" in listing and " worker " not in listing and "forkserver" not in listing
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "foreground" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    assert "--json      one JSON object" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["audit", "show", "--help"])
    assert "machine-readable" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["subject", "find", "--help"])
    assert "- for stdin" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")


def test_a_failed_init_leaves_nothing_and_the_retry_needs_no_force(
    tmp_path: Path, pg_url: str, identity_file: tuple[Path, str], capsys
) -> None:
    """Issue 28.8: the index refuses the login: exit 9, and neither the configuration nor the
    directories, keys or cluster key it made are left behind."""
    _, recipient = identity_file
    d = tmp_path / "node"
    refused = pg_url.replace("postgresql://postgres@", "postgresql://nobody@")
    assert (
        main(["init", "--dir", str(d), "--recipient", recipient, "--index-url", refused])
        == exitcodes.EXIT_STORAGE
    )
    assert "nobody" in capsys.readouterr().err
    assert not d.exists()
    # Into a directory that was there (install.sh makes it): only what init made goes.
    d.mkdir(mode=0o700)
    (d / "notes.txt").write_text("the administrator's\n")
    assert (
        main(["init", "--dir", str(d), "--recipient", recipient, "--index-url", refused])
        == exitcodes.EXIT_STORAGE
    )
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]
    assert main(["init", "--dir", str(d), "--recipient", recipient, "--index-url", pg_url]) == 0


def test_init_takes_what_a_further_node_needs(tmp_path: Path, identity_file: tuple[Path, str]) -> None:
    """Issue 28.9: store, peers and the ports two nodes on one host must not share, from flags."""
    from gateway.config import load

    _, recipient = identity_file
    d = tmp_path / "b"
    args = ["init", "--dir", str(d), "--recipient", recipient, "--workers", "2", "--node-name", "node-b",
            "--peer", "127.0.0.2:5060", "--worker-base-port", "5200", "--metrics-listen", "127.0.0.1:9465",
            "--rtp-port", "42000", "--store-url", "s3://calls/node-b", "--store-endpoint", "http://127.0.0.1:8333",
            "--store-region", "us-east-1", "--object-lock", "compliance"]  # fmt: skip
    assert main(args) == 0
    c = load(d / "gateway.toml")
    assert (
        c.node.name == "node-b" and c.node.peers == [("127.0.0.2", 5060)] and c.node.worker_base_port == 5200
    )
    assert c.node.metrics_listen == ("127.0.0.1", 9465) and c.calls.rtp_port == 42000
    assert (c.store.url, c.store.endpoint, c.store.region, c.store.object_lock) == (
        "s3://calls/node-b", "http://127.0.0.1:8333", "us-east-1", "compliance",
    )  # fmt: skip


def test_the_demo_names_a_tone_whose_phase_jumps_as_a_loaded_jitter_buffer_makes_it() -> None:
    """The demo's own check of the decrypted channels: a 440 Hz tone with a frame dropped or
    repeated now and then (a phase jump) is still 440 Hz; noise is no clear tone; zeros are
    silence. Measured over the whole second at once, the jumps made the tone vanish (CI saw
    "channel 0 (caller) carries no clear tone" under load)."""
    import math
    import random
    from array import array

    from gateway.cli.demo import RATE, _tone_name

    rng = random.Random(7)

    def tone(freq: float, jumps: bool) -> array:
        out, phase = array("h"), 0.0
        for i in range(RATE):
            if jumps and i % 160 == 0 and rng.random() < 0.3:
                phase += rng.uniform(0, 2 * math.pi)
            out.append(int(8000 * math.sin(2 * math.pi * freq * i / RATE + phase)))
        return out

    assert [_tone_name(tone(f, j)) for f in (440, 1000) for j in (False, True)] == ["440 Hz"] * 2 + [
        "1000 Hz"
    ] * 2
    assert _tone_name(array("h", [int(rng.gauss(0, 3000)) for _ in range(RATE)])) == "no clear tone"
    assert _tone_name(array("h", [0] * RATE)) == "silence"
