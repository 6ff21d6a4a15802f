"""The code base passes ruff (the rules are in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "gateway", "simphone", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_code_is_formatted() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "gateway", "simphone", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, "run `.venv/bin/ruff format gateway simphone tests bench`:\n" + res.stdout


def test_mypy_accepts_the_gateway() -> None:
    res = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_repository_carries_no_recordings_or_benchmark_output() -> None:
    """Benchmarks and tests write under the system temp directory; ciphertext or audio committed
    to the repository is output that escaped (113 MB of bench/tmp*/ once did)."""
    res = subprocess.run(
        ["git", "ls-files", "*.age", "bench/*/*", "*.mp3", "*.opus"], cwd=ROOT, capture_output=True, text=True
    )
    if res.returncode != 0:  # not a git checkout (a source tarball): look at the files themselves
        found = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.age") if ".venv" not in p.parts]
    else:
        found = res.stdout.split()
    assert found == []
    for bench in (ROOT / "bench").glob("*.py"):
        text = bench.read_text()
        assert "dirname(os.path.abspath(__file__))" not in text and "dir=Path(__file__)" not in text, (
            bench.name
        )
