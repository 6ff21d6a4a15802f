"""The configuration has one source of truth: each setting is declared once (sections.py), and
the template `gateway init` writes, the example in deploy/ and the README's table follow it."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from gateway import config as cfg
from gateway.config.sections import SECTIONS

ROOT = Path(__file__).resolve().parent.parent


def test_the_deploy_example_is_what_the_declarations_give() -> None:
    assert (ROOT / "deploy/gateway.toml.example").read_text() == cfg.example(), (
        "regenerate it: .venv/bin/python -m gateway.config example > deploy/gateway.toml.example"
    )


def test_every_setting_is_in_the_readme_table_of_its_section() -> None:
    readme = (ROOT / "README.md").read_text()
    rows: dict[str, str] = {}
    current = None
    for line in readme.splitlines():
        m = re.match(r"\| `\[\[?(\w+)\]\]?` \|", line)
        if m:
            current = m.group(1)
        if current and line.startswith("|"):
            rows[current] = rows.get(current, "") + line
        elif not line.startswith("|"):
            current = None
    missing = [
        f"[{s.NAME}] {f.name}"
        for s in SECTIONS
        for f in s.settings()
        if f"`{f.name}`" not in rows.get(s.NAME, "")
    ]
    missing += [f"[[routes]] {key}" for key in cfg.ROUTE_KEYS if f"`{key}`" not in rows.get("routes", "")]
    assert missing == [], "document these in README.md's configuration table"


def test_python_defaults_are_the_toml_defaults_read(tmp_path: Path) -> None:
    """Loading a file that sets nothing gives exactly the dataclasses' own defaults."""
    (tmp_path / "g.toml").write_text(f'[paths]\ndata_dir = "{tmp_path}"\n')
    loaded = cfg.load(tmp_path / "g.toml")
    for section, attr in (
        (cfg.SipConfig, "sip"),
        (cfg.CallsConfig, "calls"),
        (cfg.NodeConfig, "node"),
        (cfg.DashboardConfig, "dashboard"),
        (cfg.ConsentConfig, "consent"),
        (cfg.RecordingConfig, "recording"),
        (cfg.NumbersConfig, "numbering"),
    ):
        default = section()
        for f in fields(section):
            value = getattr(default, f.name)
            if isinstance(value, Path):
                value = tmp_path / value  # relative defaults are resolved against data_dir
            assert getattr(getattr(loaded, attr), f.name) == value, f"[{section.NAME}] {f.name}"


def test_init_writes_every_setting_once() -> None:
    text = cfg.render(
        data_dir=Path("/d"),
        recipients=[],
        sip_listen="127.0.0.1:5060",
        pbx_uri="sip:h@127.0.0.1:5070",
        mode="opt-out",
    )
    keys = re.findall(r"^(\w+) = ", text, re.M)
    declared = [f.name for s in SECTIONS for f in s.settings()]
    assert keys == declared


def test_the_two_node_examples_load_and_differ_only_where_they_must(tmp_path: Path) -> None:
    """deploy/node-a.toml and node-b.toml: valid (TLS files aside, which a site provides), one
    index, one bucket, one set of recipients; each its own name and addresses."""
    loaded = []
    for name in ("node-a", "node-b"):
        text = (ROOT / "deploy" / f"{name}.toml").read_text()
        text = text.replace("/var/lib/consent-gateway", str(tmp_path / name))
        text = "\n".join(
            line
            for line in text.splitlines()
            if not line.startswith(("tls_", 'listen = "192.0.2.1')) or "5060" in line
        )
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        loaded.append(cfg.load(path))
    a, b = loaded
    assert a.index.url == b.index.url and a.index.postgres
    assert a.store.url == b.store.url and a.recording.recipients == b.recording.recipients
    assert a.node.name != b.node.name and a.sip.listen != b.sip.listen
    assert (b.sip.listen[0], b.sip.listen[1]) in a.node.peers and (
        a.sip.listen[0],
        a.sip.listen[1],
    ) in b.node.peers


def test_a_preloaded_configuration_is_taken_once_and_only_while_the_file_is_unchanged(
    tmp_path: Path,
) -> None:
    """A node's fork server preloads the configuration; a forked worker's first load takes it
    instead of parsing the file again, unless the file changed meanwhile (an edit before a
    worker is replaced is read, as it was before preloading)."""
    path = tmp_path / "g.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[calls]\nmax_duration_s = 1000\n')
    kept = cfg.preload(path)
    assert cfg.load(path) is kept
    assert cfg.load(path) is not kept  # once: a later load reads the file again
    assert cfg.load(path).calls.max_duration_s == 1000

    cfg.preload(path)
    path.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[calls]\nmax_duration_s = 2000\n')
    assert cfg.load(path).calls.max_duration_s == 2000
