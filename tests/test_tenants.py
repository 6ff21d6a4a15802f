"""Tenants (config/tenants.py, issue 27): each region's calls are recorded, and their callers'
numbers sealed, to that region's keys only (and its escrow, if it has one); a system without
[[tenants]] works as before."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gateway import age
from gateway.config import load
from gateway.errors import ConfigError
from gateway.recording import wav
from gateway.recording.recorder import RecorderEngine
from gateway.storage.rows import RecordingStatus
from tests.audio import dominant_frequency, frames, split_channels, tone
from tests.calls import ROOT, CallLab
from tests.gw import make_gateway

pytestmark = pytest.mark.slow


def keypair(tmp: Path, name: str) -> tuple[Path, str]:
    key = tmp / f"{name}-key.txt"
    identity = age.Identity.generate()
    key.write_text(identity.encode() + "\n")
    key.chmod(0o600)
    return key, str(identity.recipient())


def tenants_toml(tenants: dict[str, dict[str, object]], routes: dict[str, str]) -> str:
    out = ""
    for name, fields in tenants.items():
        out += f'\n[[tenants]]\nname = "{name}"\n'
        out += "".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items())
    for number, tenant in routes.items():
        out += f'\n[[routes]]\nnumber = "{number}"\ntenant = "{tenant}"\n'
    return out


def with_tenants(gw_config: Path, text: str, *, clear_recipients: bool = True) -> None:
    body = gw_config.read_text()
    if clear_recipients:
        start = body.index("\nrecipients = [")
        end = body.index("]", start)
        body = body[:start] + "\nrecipients = []" + body[end + 1 :]
    gw_config.write_text(body + text)


# -- the configuration ------------------------------------------------------------------------


@pytest.fixture
def gwdir(tmp_path: Path):
    return make_gateway(tmp_path)


def test_without_tenants_a_route_is_the_implicit_tenants_and_keeps_recipients(gwdir) -> None:
    cfg = load(gwdir.config)
    assert cfg.tenancy.listed == ()
    [route] = cfg.routes
    tenant = cfg.tenant_of(route)
    assert tenant.name == "" and tenant.stored is None
    assert [str(r) for r in tenant.sealing] == [gwdir.recipient]


def test_routes_take_their_tenants_keys_escrow_and_retention(gwdir, tmp_path: Path) -> None:
    _, north = keypair(tmp_path, "north")
    _, south = keypair(tmp_path, "south")
    _, officer = keypair(tmp_path, "officer")
    with_tenants(
        gwdir.config,
        tenants_toml(
            {
                "north": {"recipients": [north], "escrow": [officer], "retention_days": 400},
                "south": {"recipients": [south]},
            },
            {"1177": "north", "1188": "south"},
        )
        + '\n[[routes]]\nnumber = "1199"\ntenant = "north"\nretention_days = 30\n',
    )
    cfg = load(gwdir.config)
    by = {r.number: r for r in cfg.routes}
    assert [str(r) for r in cfg.tenant_of(by["1177"]).sealing] == [north, officer]
    assert [str(r) for r in cfg.tenant_of(by["1188"]).sealing] == [south]
    # A route's retention: its own if it sets one, else its tenant's, else [recording]'s.
    assert by["1177"].retention_days == 400 and by["1199"].retention_days == 30
    assert by["1188"].retention_days == cfg.recording.retention_days


@pytest.mark.parametrize(
    ("tenants", "routes", "extra", "message"),
    [
        ({"north": {"recipients": ["R1"]}}, {"1177": ""}, "", "names no tenant"),
        ({"north": {"recipients": ["R1"]}}, {"1177": "nroth"}, "", "did you mean 'north'"),
        ({}, {"1177": "north"}, "", "no [[tenants]] are configured"),
        ({"North": {"recipients": ["R1"]}}, {}, "", "needs a name"),
        ({"north": {"recipients": []}}, {"1177": "north"}, "", "recipients is empty"),
        ({"north": {"recipients": ["R1"], "escrow": ["PQ"]}}, {"1177": "north"}, "", "one kind"),
        ({"north": {"recipients": ["R1"], "retention_days": 0}}, {"1177": "north"}, "", "retention_days"),
        ({"north": {"recipients": ["R1"], "keys": []}}, {"1177": "north"}, "", "unknown setting 'keys'"),
        ({"north": {"recipients": ["AGE-SECRET-KEY-1X"]}}, {"1177": "north"}, "", "private key"),
    ],
)
def test_tenant_mistakes_are_refused_with_the_setting_named(
    gwdir, tmp_path: Path, tenants: dict, routes: dict, extra: str, message: str
) -> None:
    _, r1 = keypair(tmp_path, "r1")
    pq = str(age.HybridIdentity.generate().recipient())
    text = tenants_toml(tenants, {}).replace('"R1"', json.dumps(r1)).replace('"PQ"', json.dumps(pq))
    for number, tenant in routes.items():
        text += f'\n[[routes]]\nnumber = "{number}"\n' + (f'tenant = "{tenant}"\n' if tenant else "")
    with_tenants(gwdir.config, text + extra)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(gwdir.config)


def test_tenants_refuse_a_global_recipient_and_a_duplicate(gwdir, tmp_path: Path) -> None:
    _, r1 = keypair(tmp_path, "r1")
    text = tenants_toml({"north": {"recipients": [r1]}}, {"1177": "north"})
    with_tenants(gwdir.config, text, clear_recipients=False)
    with pytest.raises(ConfigError, match=r"\[recording\] recipients must be empty"):
        load(gwdir.config)
    with_tenants(gwdir.config, "", clear_recipients=True)
    gwdir.config.write_text(
        gwdir.config.read_text() + f'\n[[tenants]]\nname = "north"\nrecipients = ["{r1}"]\n'
    )
    with pytest.raises(ConfigError, match="listed twice"):
        load(gwdir.config)


def test_recording_tenant_names_the_default_routes_tenant(gwdir, tmp_path: Path) -> None:
    _, r1 = keypair(tmp_path, "r1")
    with_tenants(gwdir.config, tenants_toml({"north": {"recipients": [r1]}}, {}))
    with pytest.raises(ConfigError, match="the default route names no tenant"):
        load(gwdir.config)
    gwdir.set("recording", "tenant", "north")
    cfg = load(gwdir.config)
    assert cfg.tenant_of(cfg.routes[0]).name == "north"


# -- recordings and sealed numbers, by tenant ---------------------------------------------------


def record(gw, tenant_name: str | None, call_id: str | None = None) -> str:
    engine = RecorderEngine(start_thread=False)
    service = gw.recording_service(engine, actor="test")
    tenant = gw.config.tenancy.get(tenant_name)
    started = service.start(call_id, tenant=tenant)
    assert started is not None
    rec_id, rec = started
    t = 0.0
    for a, b in zip(frames(tone(440, 1.0)), frames(tone(1000, 1.0)), strict=True):
        rec.push_frame(0, a, at=rec._t0 + t)
        rec.push_frame(1, b, at=rec._t0 + t)
        t += 0.02
        engine.tick()
    rec.finish(at=rec._t0 + t)
    engine.tick()
    rec.done.result(timeout=5)
    return rec_id


def opens(gw, rec_id: str, key: Path) -> bool:
    row = gw.index.get_recording(rec_id)
    with gw.store.open(row.object_name) as f:
        try:
            age.AgeReader(f, age.load_identity_file(key)).read_all()
        except age.NoIdentityMatchError:
            return False
    return True


def test_rewrap_moves_each_recording_to_its_own_tenants_new_keys(gwdir, tmp_path: Path) -> None:
    north_key, north = keypair(tmp_path, "north")
    south_key, south = keypair(tmp_path, "south")
    with_tenants(
        gwdir.config,
        tenants_toml({"north": {"recipients": [north]}, "south": {"recipients": [south]}}, {"1177": "north"}),
    )
    gw = gwdir.open()
    a, b = record(gw, "north"), record(gw, "south")
    assert gw.index.get_recording(a).tenant == "north" and gw.index.get_recording(b).tenant == "south"
    gw.close()
    # North's key is replaced; south's stays.
    new_key, new_north = keypair(tmp_path, "north2")
    gwdir.config.write_text(gwdir.config.read_text().replace(north, new_north))
    assert gwdir.run("recordings", "rewrap", "--identity", str(north_key)) == 0
    gw = gwdir.open()
    assert opens(gw, a, new_key) and not opens(gw, a, north_key)
    assert opens(gw, b, south_key) and not opens(gw, b, new_key), "south's recording is not moved to north"
    [entry] = [e for e in gw.index.audit_entries() if e.action == "recording.rewrapped"]
    assert entry.subject == a and entry.details["tenant"] == "north"
    gw.close()


def test_legacy_import_names_its_tenant(gwdir, tmp_path: Path) -> None:
    north_key, north = keypair(tmp_path, "north")
    with_tenants(gwdir.config, tenants_toml({"north": {"recipients": [north]}}, {"1177": "north"}))
    src = tmp_path / "archive"
    src.mkdir()
    pcm = tone(440, 1.0)
    (src / "old.wav").write_bytes(wav.header(8000, 1, data_size=len(pcm)) + pcm)
    res = subprocess.run(
        [str(ROOT / ".venv/bin/gateway"), "--config", str(gwdir.config), "import-legacy", str(src)],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0 and "--tenant" in res.stderr
    assert gwdir.run("import-legacy", str(src), "--tenant", "north") == 0
    gw = gwdir.open()
    [row] = gw.index.list_recordings()
    assert row.tenant == "north" and opens(gw, row.id, north_key)
    gw.close()


# -- calls through a node ---------------------------------------------------------------------


def test_each_tenants_calls_open_with_its_key_alone_and_escrow_opens_both(tmp_path: Path) -> None:
    lab = CallLab(tmp_path, workers=1)
    keys = {name: keypair(tmp_path, name) for name in ("north", "south", "officer")}
    with_tenants(
        lab.gw.config,
        tenants_toml(
            {
                "north": {"recipients": [keys["north"][1]], "escrow": [keys["officer"][1]]},
                "south": {"recipients": [keys["south"][1]], "escrow": [keys["officer"][1]]},
            },
            {"1177": "north", "1188": "south"},
        ),
    )
    try:
        lab.start_gateway()
        for number, caller_number in (("1177", "+46700000001"), ("1188", "+46700000002")):
            pbx = lab.peer("pbx", "--tone", "1000")
            caller = lab.peer(
                "caller",
                "--target",
                f"sip:{number}@{lab.host}:{lab.sip_port}",
                "--number",
                caller_number,
                "--hangup-after",
                "4",
            )
            caller.wait_exit()
            pbx.wait_exit()
        lab.stop_gateway()
        gw = lab.gw.open()
        rows = {r.tenant: r for r in gw.index.list_recordings()}
        assert set(rows) == {"north", "south"}
        assert all(r.status == RecordingStatus.COMPLETE for r in rows.values())
        for tenant, other in (("north", "south"), ("south", "north")):
            row = rows[tenant]
            assert opens(gw, row.id, keys[tenant][0]), f"{tenant}'s key opens its own recording"
            assert not opens(gw, row.id, keys[other][0]), f"{other}'s key does not open {tenant}'s"
            assert opens(gw, row.id, keys["officer"][0]), "the escrow key opens both"
            assert not opens(gw, row.id, lab.gw.key), "the operator key of [recording] is not used"
            # The caller's tone on channel 0 and the helpline's on channel 1, in the tenant's own
            # decryption.
            with gw.store.open(row.object_name) as f:
                plain = age.AgeReader(f, age.load_identity_file(keys[tenant][0])).read_all()
            caller_ch, helpline_ch = split_channels(plain[44:])
            assert len(caller_ch) > 8000
            assert abs(dominant_frequency(caller_ch) - 440) < 20
            assert abs(dominant_frequency(helpline_ch) - 1000) < 20
            call = gw.index.get_call(row.call_id)
            assert call.tenant == tenant
            # The caller's number is sealed to the tenant's keys too, not the other's.
            assert (
                age.decrypt(call.caller_enc, age.load_identity_file(keys[tenant][0]))
                .decode()
                .endswith("0000001" if tenant == "north" else "0000002")
            )
            with pytest.raises(age.NoIdentityMatchError):
                age.decrypt(call.caller_enc, age.load_identity_file(keys[other][0]))
        gw.close()
        out = subprocess.run(
            [str(ROOT / ".venv/bin/gateway"), "--config", str(lab.gw.config), "recordings", "list"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "TENANT" in out.splitlines()[0]
        assert {line.split()[-1] for line in out.splitlines()[1:]} == {"north", "south"}
    finally:
        lab.close()


def test_user_scopes_name_configured_tenants_and_are_audited(gwdir, tmp_path: Path) -> None:
    _, r1 = keypair(tmp_path, "r1")
    with_tenants(gwdir.config, tenants_toml({"north": {"recipients": [r1]}}, {"1177": "north"}))
    cli = [str(ROOT / ".venv/bin/gateway"), "--config", str(gwdir.config), "user"]
    typo = subprocess.run([*cli, "add", "nora", "--role", "supervisor", "--scope", "nroth"], input="x" * 12 + "\n",
                          capture_output=True, text=True)  # fmt: skip
    assert typo.returncode != 0 and "no tenant 'nroth'" in typo.stderr
    ok = subprocess.run([*cli, "add", "nora", "--role", "supervisor", "--scope", "north"], input="x" * 12 + "\n",
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    listed = subprocess.run([*cli, "list"], capture_output=True, text=True, check=True).stdout
    assert "tenants north" in listed
    assert subprocess.run([*cli, "scope", "nora", ""], capture_output=True, text=True).returncode == 0
    gw = gwdir.open()
    assert gw.user_store().get("nora").tenants is None
    actions = [(e.action, e.details.get("scope")) for e in gw.index.audit_entries() if e.subject == "nora"]
    assert actions == [("user.added", "north"), ("user.scope_changed", "")]
    gw.close()


def test_a_tenants_audit_export_verifies_against_signed_checkpoints_without_other_tenants_entries(
    gwdir, tmp_path: Path
) -> None:
    _, north = keypair(tmp_path, "north")
    _, south = keypair(tmp_path, "south")
    with_tenants(
        gwdir.config,
        tenants_toml({"north": {"recipients": [north]}, "south": {"recipients": [south]}}, {"1177": "north"}),
    )
    gw = gwdir.open()
    a, b = record(gw, "north"), record(gw, "south")
    gw.close()
    cli = [str(ROOT / ".venv/bin/gateway"), "--config", str(gwdir.config), "audit"]
    witness = tmp_path / "witness.log"
    witness.write_text(
        subprocess.run([*cli, "checkpoint"], capture_output=True, text=True, check=True).stdout
    )
    out = tmp_path / "north.jsonl"
    subprocess.run(
        [*cli, "export", "--tenant", "north", "-o", str(out)], capture_output=True, text=True, check=True
    )
    text = out.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert a in text and b not in text, "south's entries are sealed: not even its recording's id"
    mine = [d for d in lines if "sealed" not in d]
    assert mine and all(d["subject"] == a for d in mine)
    assert any("sealed" in d for d in lines)
    pub = str(gwdir.dir / "secrets" / "signing.pub")
    verify = [*cli, "verify", "--json", "--from", str(out), "--public-key", pub, "--checkpoint", str(witness)]
    res = subprocess.run(verify, capture_output=True, text=True)
    verdict = json.loads(res.stdout)
    assert res.returncode == 0 and verdict["ok"] and verdict["checkpoints"] == 1, res.stdout + res.stderr
    assert verdict["sealed"] == len(lines) - len(mine) and verdict["opaque"] == 0
    # A sealed entry whose digest was changed (someone else's entry swapped for another) breaks
    # the chain at that entry.
    i = next(n for n, d in enumerate(lines) if "sealed" in d and d["seq"] > 1)
    lines[i]["sealed"] = "0" * 64
    out.write_text("".join(json.dumps(d) + "\n" for d in lines))
    res = subprocess.run(verify, capture_output=True, text=True)
    assert res.returncode != 0 and json.loads(res.stdout)["problem"]["kind"] == "edited"
    unknown = subprocess.run([*cli, "export", "--tenant", "west"], capture_output=True, text=True)
    assert unknown.returncode != 0 and "west" in unknown.stderr


def test_a_nodes_links_know_each_live_calls_tenant_until_it_ends() -> None:
    from gateway.callevents import CallState, EventType
    from gateway.supervisor.links import WorkerLinks

    links = WorkerLinks()
    links._dispatch(0, {"type": EventType.CALL_STARTED, "call": "c1", "tenant": "north"})
    links._dispatch(1, {"type": EventType.CALL_STARTED, "call": "c2"})
    assert (links.tenant_of("c1"), links.tenant_of("c2"), links.tenant_of("c3")) == ("north", "", "")
    links._dispatch(
        0, {"type": EventType.CALL_STATE, "call": "c1", "state": CallState.ENDED, "tenant": "north"}
    )
    assert links.tenant_of("c1") == "" and not links.owns("c1")
    links._lost(1)
    assert not links.owns("c2")


def test_a_scoped_officers_subject_search_sees_and_finds_their_tenants_calls_alone(
    gwdir, tmp_path: Path
) -> None:
    from gateway.app.subject import BrowserSearch
    from gateway.storage import pii
    from gateway.storage.rows import CallRow, utcnow

    gw = gwdir.open()
    recipients = gw.config.recording.recipients
    for call_id, tenant in (("cn", "north"), ("cs", "south")):
        gw.index.add_call(
            CallRow(call_id, utcnow(), caller_enc=pii.seal_value("+46701234567", recipients), tenant=tenant)
        )
    search = BrowserSearch(gw.index, gw.store, gw.config.numbering)
    north = frozenset({"north"})
    label = search.start("dashboard:nora", None, None, north)
    rows, _ = search.page("", None, None, north)
    assert [c for c, _ in rows] == ["cn"]
    calls, _ = search.found("dashboard:nora", label, ["cn", "cs"], north)
    assert [c.id for c in calls] == ["cn"], "south's call named in the request is left out"
    [entry] = [e for e in gw.index.audit_entries() if e.action == "subject.searched"]
    assert entry.details["tenants"] == ["north"]
    gw.close()


def test_a_tenants_subject_request_from_the_cli_searches_and_is_audited_as_its_own(
    gwdir, tmp_path: Path
) -> None:
    """`gateway subject ... --tenant north` searches north's calls alone (south's numbers, sealed
    to south's key, are neither tried nor counted as unreadable), and every entry of the request,
    which names only a random label, is north's in north's audit export."""
    from gateway.storage import pii
    from gateway.storage.rows import CallRow, utcnow

    north_key, north = keypair(tmp_path, "north")
    _, south = keypair(tmp_path, "south")
    with_tenants(
        gwdir.config,
        tenants_toml({"north": {"recipients": [north]}, "south": {"recipients": [south]}}, {"1177": "north"}),
    )
    gw = gwdir.open()
    for call_id, tenant in (("cn", "north"), ("cs", "south")):
        recipients = gw.config.tenancy.get(tenant).sealing
        gw.index.add_call(
            CallRow(call_id, utcnow(), caller_enc=pii.seal_value("+46701234567", recipients), tenant=tenant)
        )
    a, b = record(gw, "north", "cn"), record(gw, "south", "cs")
    gw.close()
    cli = [str(ROOT / ".venv/bin/gateway"), "--config", str(gwdir.config)]
    ask = ["--number", "+46701234567", "--identity", str(north_key)]
    whole = subprocess.run([*cli, "subject", "find", *ask, "--json"], capture_output=True, text=True)
    assert whole.returncode == 0 and "1 stored number(s) are not encrypted to this identity" in whole.stderr
    found = subprocess.run(
        [*cli, "subject", "find", *ask, "--tenant", "north", "--json"], capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr
    assert "not encrypted" not in found.stderr and "1 stored number(s) checked" in found.stderr
    assert json.loads(found.stdout)["calls"] == ["cn"]
    erased = subprocess.run(
        [*cli, "subject", "erase", *ask, "--tenant", "north"], capture_output=True, text=True
    )
    assert erased.returncode == 0, erased.stderr
    gw = gwdir.open()
    assert gw.index.get_recording(a).status == RecordingStatus.DELETED
    assert gw.index.get_recording(b).status == RecordingStatus.COMPLETE
    request = [e for e in gw.index.audit_entries() if e.action.startswith("subject.")]
    assert [e.tenant for e in request] == [None, "north", "north"], "the unscoped search is no tenant's"
    gw.close()
    out = tmp_path / "north.jsonl"
    subprocess.run([*cli, "audit", "export", "--tenant", "north", "-o", str(out)], check=True)
    shown = [json.loads(line) for line in out.read_text().splitlines()]
    actions = [d["action"] for d in shown if "sealed" not in d]
    assert (
        actions.count("subject.found") == 1 and "subject.erased" in actions and "recording.deleted" in actions
    )
    assert b not in out.read_text()
    west = subprocess.run([*cli, "subject", "find", *ask, "--tenant", "west"], capture_output=True, text=True)
    assert (
        west.returncode != 0 and "no tenant 'west' in [[tenants]] (configured: north, south)" in west.stderr
    )


def test_retention_keeps_each_tenants_recordings_for_its_own_days_and_runs_per_tenant(
    gwdir, tmp_path: Path
) -> None:
    """A recording without days of its own is kept for its tenant's retention_days (else
    [recording] retention_days); `retention run --tenant` deletes that tenant's alone, and its
    entries are that tenant's."""
    from datetime import UTC, datetime, timedelta

    from gateway.app import retention

    _, north = keypair(tmp_path, "north")
    _, south = keypair(tmp_path, "south")
    with_tenants(
        gwdir.config,
        tenants_toml(
            {"north": {"recipients": [north], "retention_days": 30}, "south": {"recipients": [south]}},
            {"1177": "north"},
        ),
    )
    gw = gwdir.open()
    a, b = record(gw, "north"), record(gw, "south")
    assert gw.index.get_recording(a).retention_days is None  # made outside a route: no days of its own
    keep = retention.Retention.of(gw.config)
    in_40_days, in_100_days = (datetime.now(UTC) + timedelta(days=d) for d in (40, 100))
    assert [r.id for r in retention.expired(gw.index, keep, in_40_days)] == [a], (
        "north keeps 30 days, south 90"
    )
    assert [r.id for r in retention.expired(gw.index, keep, in_100_days, tenant="south")] == [b]
    report = retention.run(gw.store, gw.index, keep, "test", now=in_100_days, tenant="south")
    assert report.deleted == [b] and gw.index.get_recording(a).status == RecordingStatus.COMPLETE
    entries = [e for e in gw.index.audit_entries() if e.action in ("recording.deleted", "retention.run")]
    assert [(e.action, e.tenant) for e in entries] == [
        ("recording.deleted", "south"),
        ("retention.run", "south"),
    ]
    gw.close()
    cli = [str(ROOT / ".venv/bin/gateway"), "--config", str(gwdir.config), "retention", "run"]
    west = subprocess.run([*cli, "--tenant", "wset"], capture_output=True, text=True)
    assert west.returncode != 0 and "no tenant 'wset' in [[tenants]]" in west.stderr
    dry = subprocess.run([*cli, "--tenant", "north", "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0 and "would delete 0" in dry.stdout, dry.stdout + dry.stderr
