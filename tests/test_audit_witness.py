"""The audit chain against its witnesses: signed checkpoints leave the gateway (remote syslog,
witness file) after every command that wrote to the log, and `audit verify` catches a log that
was cut or rewritten with fresh hashes, which the chain alone cannot show. An export verifies
offline, without the gateway."""

from __future__ import annotations

import json
import socket
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.cli import exitcodes
from gateway.storage import audit
from tests.gw import GatewayUnderTest, make_gateway


@pytest.fixture
def syslog() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    yield s
    s.close()


@pytest.fixture
def tgw(tmp_path: Path, syslog: socket.socket) -> GatewayUnderTest:
    tgw = make_gateway(tmp_path)
    port = syslog.getsockname()[1]
    text = tgw.config.read_text()
    text = text.replace('witness_syslog = ""', f'witness_syslog = "udp:127.0.0.1:{port}"')
    text = text.replace('witness_file = ""', f'witness_file = "{tmp_path / "witness.log"}"')
    tgw.config.write_text(text)
    return tgw


def relink_without(tgw: GatewayUnderTest, seq: int) -> None:
    """What an insider with database access does: delete an entry, renumber and rehash the rest."""
    gw = tgw.open()
    entries = [e for e in gw.index.audit_entries() if e.seq != seq]
    gw.close()
    db = sqlite3.connect(tgw.dir / "index.sqlite3")
    db.execute("DELETE FROM audit")
    prev = audit.GENESIS
    for i, e in enumerate(entries, 1):
        e = audit.seal(replace(e, seq=i), prev, e.v)
        db.execute(
            "INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?)",
            (
                e.seq,
                e.ts,
                e.actor,
                e.action,
                e.subject,
                json.dumps(e.details, sort_keys=True),
                e.prev_hash,
                e.hash,
                e.v,
            ),
        )
        prev = e.hash
    db.commit()
    db.close()


def test_each_command_sends_a_signed_checkpoint_to_the_witnesses(
    tgw: GatewayUnderTest, tmp_path: Path, syslog: socket.socket
) -> None:
    rec = tgw.record(1)
    assert tgw.run("recordings", "export", rec, "-i", str(tgw.key), "-o", str(tmp_path / "a.wav")) == 0
    datagrams = [syslog.recv(65536).decode(), syslog.recv(65536).decode()]  # after the recording, the export
    assert all("consent-gateway:" in d for d in datagrams)
    sent = audit.parse_checkpoints(datagrams)
    kept = audit.parse_checkpoints((tmp_path / "witness.log").read_text().splitlines())
    gw = tgw.open()
    head = gw.index.audit_head()
    assert sent == kept and (sent[-1].seq, sent[-1].hash) == head
    assert gw.index.audit_entries()[-1].action == "recording.exported"
    assert all(cp.verify(gw.signing_public()) for cp in sent)
    assert tgw.run("audit", "verify", "--checkpoint", str(tmp_path / "witness.log")) == 0


def test_a_relinked_log_passes_alone_but_not_against_the_witness(
    tgw: GatewayUnderTest, tmp_path: Path, capsys
) -> None:
    rec = tgw.record(1)
    assert tgw.run("recordings", "export", rec, "-i", str(tgw.key), "-o", str(tmp_path / "a.wav")) == 0
    capsys.readouterr()
    export_seq = [e.seq for e in tgw.open().index.audit_entries() if e.action == "recording.exported"][0]
    relink_without(tgw, export_seq)  # hide the export
    assert tgw.run("audit", "verify") == 0, "the chain alone cannot show a consistent rewrite"
    capsys.readouterr()
    assert (
        tgw.run("audit", "verify", "--json", "--checkpoint", str(tmp_path / "witness.log"))
        == exitcodes.EXIT_FINDINGS
    )
    problem = json.loads(capsys.readouterr().out)["problem"]
    assert problem["kind"] in ("rewritten", "truncated")


def test_entries_cut_from_the_end_are_caught_by_a_checkpoint_or_a_recorded_head(
    tgw: GatewayUnderTest, tmp_path: Path, capsys
) -> None:
    tgw.record(1)
    assert tgw.run("audit", "checkpoint") == 0
    head = json.loads(capsys.readouterr().out)["hash"]
    db = sqlite3.connect(tgw.dir / "index.sqlite3")
    db.execute("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")
    db.commit()
    db.close()
    assert tgw.run("audit", "verify") == 0
    assert tgw.run("audit", "verify", "--head", head) == exitcodes.EXIT_FINDINGS
    assert "removed from the end" in capsys.readouterr().out
    assert (
        tgw.run("audit", "verify", "--checkpoint", str(tmp_path / "witness.log")) == exitcodes.EXIT_FINDINGS
    )
    assert "truncated" in capsys.readouterr().out


def test_a_checkpoint_signed_by_someone_else_is_refused(
    tgw: GatewayUnderTest, tmp_path: Path, capsys
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    tgw.record(1)
    head = tgw.open().index.audit_head()
    fake = tmp_path / "fake.log"
    fake.write_text(
        audit.make_checkpoint(head[0], head[1], "now", Ed25519PrivateKey.generate()).line() + "\n"
    )
    assert tgw.run("audit", "verify", "--checkpoint", str(fake)) == exitcodes.EXIT_FINDINGS
    assert "forged-checkpoint" in capsys.readouterr().out


@pytest.mark.parametrize("damage,kind", [("edit", "edited"), ("delete", "deleted"), ("cut-end", "truncated")])
def test_an_export_verifies_offline_and_shows_each_kind_of_damage(
    tgw: GatewayUnderTest, tmp_path: Path, capsys, damage: str, kind: str
) -> None:
    tgw.record(1)
    tgw.record(1)
    out = tmp_path / "audit.jsonl"
    assert tgw.run("audit", "export", "-o", str(out)) == 0
    assert tgw.run("audit", "export", "-o", str(out)) == exitcodes.EXIT_FINDINGS  # never overwritten
    pub = str(tgw.dir / "secrets" / "signing.pub")
    witness = str(tmp_path / "witness.log")
    from gateway.cli import main

    assert main(["audit", "verify", "--from", str(out), "--public-key", pub, "--checkpoint", witness]) == 0
    lines = out.read_text().splitlines()
    if damage == "edit":
        d = json.loads(lines[2])
        d["actor"] = "someone-else"
        lines[2] = json.dumps(d)
    elif damage == "delete":
        del lines[2]
    else:
        lines = lines[:-2]
    out.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert (
        main(["audit", "verify", "--json", "--from", str(out), "--public-key", pub, "--checkpoint", witness])
        == exitcodes.EXIT_FINDINGS
    )
    assert json.loads(capsys.readouterr().out)["problem"]["kind"] == kind


def test_two_nodes_one_witness_verify_clean_and_forgeries_are_still_caught(
    tmp_path: Path, pg_url: str, s3_server, identity_file: tuple[Path, str], capsys
) -> None:
    """Issue 21.4 / 28.2: each node signs with its own key; a checkpoint and a recording
    signature name their key; every node publishes its key in the shared index and checks the
    other's with it. One witness file keeps both nodes' checkpoints."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.cli import main
    from gateway.governance import signers
    from tests.test_object_store import use_store

    key, recipient = identity_file
    witness = tmp_path / "witness.log"
    bucket = s3_server.new_bucket()
    nodes = []
    for name in ("node-a", "node-b"):
        d = tmp_path / name
        extra = ["--cluster-key", str(tmp_path / "node-a" / "secrets" / "cluster.key")] if nodes else []
        init = ["init", "--dir", str(d), "--recipient", recipient, "--index-url", pg_url, "--node-name", name]
        assert main([*init, *extra]) == 0
        node = GatewayUnderTest(d, d / "gateway.toml", key, recipient)
        node.set("audit", "witness_file", str(witness))
        use_store(node, s3_server, bucket)
        nodes.append(node)
    a, b = nodes
    printed = [
        line.split()[3] for line in capsys.readouterr().out.splitlines() if line.startswith("signing key")
    ]
    fingerprints = dict(zip("ab", printed, strict=True))
    recs = [a.record(1), b.record(1)]
    for node in (a, b):  # into the bucket both share, where either finds the other's
        gw = node.open()
        assert gw.uploader().round() == 1
        gw.close()
    for node in (a, b):
        assert node.run("audit", "checkpoint") == 0
    assert {cp.key for cp in audit.parse_checkpoints(witness.read_text().splitlines())} == set(
        fingerprints.values()
    )
    capsys.readouterr()
    # Either node verifies the whole chain against the one witness, and both nodes' recordings.
    for node in (a, b):
        assert node.run("audit", "verify", "--checkpoint", str(witness)) == 0, capsys.readouterr().out
        assert node.run("recordings", "verify") == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "0 problem(s)" in out and f"key {fingerprints['b']}" in out  # unpinned keys are named
    # Pinned: both fingerprints in [audit] signers on node A, the notes go.
    a.set("audit", "signers", [fingerprints["a"], fingerprints["b"]])
    assert a.run("recordings", "verify") == 0 and "pin it" not in capsys.readouterr().out

    # Whoever can write the index publishes a key of their own and forges with it: caught where
    # the signers are pinned (node A), and the checkpoint is refused.
    mallory = Ed25519PrivateKey.generate()
    gw = a.open()
    signers.publish(gw.index, mallory, "node-c")
    head = gw.index.audit_head()
    gw.close()
    forged = tmp_path / "forged.log"
    forged.write_text(audit.make_checkpoint(head[0], head[1], "now", mallory).line() + "\n")
    assert a.run("audit", "verify", "--checkpoint", str(forged)) == exitcodes.EXIT_FINDINGS
    assert "forged-checkpoint" in capsys.readouterr().out
    # A real alteration of node B's recording row is caught on node A.
    gw = a.open()
    gw.index.update_recording(recs[1], duration_s=999.0)
    gw.close()
    assert a.run("recordings", "verify") == exitcodes.EXIT_FINDINGS
    out = capsys.readouterr().out
    assert f"{recs[1]}: signature does not match" in out and recs[0] not in out
