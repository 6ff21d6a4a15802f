"""The architecture holds (docs/architecture.md): the layers' import contracts in pyproject.toml
pass, and the audit log is written only by the application layer (and storage, which keeps it).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), "import-linter is not installed: run scripts/setup.sh"
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_are_kept() -> None:
    res = _lint_imports(ROOT)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "3 kept, 0 broken" in res.stdout, res.stdout[-2000:]


def test_an_import_up_a_layer_breaks_the_contract(tmp_path: Path) -> None:
    """The contracts can fail: a copy of the code where storage reaches into the application
    layer, and a copy with a circle inside a package, are both refused."""
    for name, edit in (
        ("upward", ("gateway/storage/pii.py", "\nfrom ..app import gateway as _upward  # noqa\n")),
        ("circle", ("gateway/sip/message.py", "\nfrom . import secure as _circle  # noqa\n")),
    ):
        copy = tmp_path / name
        shutil.copytree(GATEWAY, copy / "gateway", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
        path, line = edit
        with open(copy / path, "a", encoding="utf-8") as f:
            f.write(line)
        res = _lint_imports(copy)
        assert res.returncode != 0, f"{name}: the contracts did not notice\n{res.stdout[-2000:]}"
        assert "BROKEN" in res.stdout


def _audit_writers(root: Path) -> list[str]:
    """Every call of `.append_audit(...)` in the gateway, as "path:line"."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append_audit"
            ):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_only_the_application_layer_writes_the_audit_log() -> None:
    writers = _audit_writers(GATEWAY)
    assert writers, "no audit entry is written anywhere: the scan is broken"
    outside = [w for w in writers if not w.startswith(("gateway/app/", "gateway/storage/"))]
    assert not outside, f"audit entries written outside gateway/app: {outside}"
