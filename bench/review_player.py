"""Benchmark: the review page's player, a 1-minute against a 60-minute recording.

    .venv/bin/python bench/review_player.py [--minutes 1 60] [--play-s 20]

The real dashboard application on loopback over a SQLite index and spool (tests/test_review_http
Lab), Debian chromium through Playwright. For each length: a recording of two tones (8 kHz,
16-bit stereo, the recorder's streaming WAV header) encrypted to a reviewer; a grant approved by
another user; the reviewer's page logs in, loads the identity file and clicks Play. Measured:

- time to first audio: the click on Play to the first decrypted block handed to Web Audio
  (the player's own fetch, header, key and decryption included);
- the waveform: the click to the last peak (the worker decrypts the whole file once for it);
- memory: proportional resident set (PSS) of the browser's renderer processes (the page and its worker), peak over
  `--play-s` seconds of playback at 2x and a seek to 90 %, and the main thread's JS heap.

The 1-minute recording is the baseline: the ratios say whether the page's cost grows with the
length of the call (it should not, except the waveform's one pass).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.app.review import person  # noqa: E402
from tests.conftest import require_tool  # noqa: E402
from tests.test_dashboard_browser import CHROMIUM_ARGS  # noqa: E402
from tests.test_review_browser import TAP, load_key, login, serve  # noqa: E402
from tests.test_review_http import Lab  # noqa: E402

TAP_TIMES = (
    TAP.replace("window.__tap[c].push(Array.from(b.getChannelData(c)));", "")
    .replace("window.__tap = [[], []];", "window.__tap = [[], []]; window.__starts = [];")
    .replace(
        "return start.apply(this, args);",
        "window.__starts.push(performance.now()); return start.apply(this, args);",
    )
)


def renderer_rss_kb(browser_pid: int) -> int:
    """Proportional resident KiB (PSS) of every renderer process under the browser (the page and its worker)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmd = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if b"--type=renderer" not in cmd:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(fields.get("PPid", "0").strip()) and _descends(int(fields["Pid"].strip()), browser_pid):
            total += pss_kb(status.parent)
    return total


def pss_kb(proc: Path) -> int:
    """Proportional set size: resident memory with shared pages divided among their users."""
    try:
        for line in (proc / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descends(pid: int, ancestor: int) -> bool:
    for _ in range(10):
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            return False
    return False


async def one(minutes: float, play_s: float, tmp: Path, p: Any, exe: str) -> dict[str, float]:
    lab = Lab(tmp)
    t = time.perf_counter()
    rec = lab.recording(seconds=minutes * 60, streaming=True)
    make_s = time.perf_counter() - t
    rita, alma = person("rita", "reviewer", "dashboard:rita"), person("alma", "approver", "dashboard:alma")
    g = lab.review.request(rita, rec.id, "quality", "benchmark")
    lab.review.approve(alma, g.id)
    lab.dash.fetches_per_minute = 1000
    try:
        async for url in serve(lab):
            browser = await p.chromium.launch(
                executable_path=exe,
                headless=True,
                args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
            )
            try:
                pid = browser_pid(browser)
                page = await browser.new_page()
                await page.add_init_script(TAP_TIMES)
                await login(page, url, "rita")
                await page.click("button[data-tab=recordings]")
                await load_key(page, lab.identity, tmp)
                await page.click(f'#rec-table tr[data-rec="{rec.id}"]')
                await page.wait_for_selector("button[data-op=play]")
                idle_kb = renderer_rss_kb(pid)
                await page.evaluate(
                    "document.querySelector('button[data-op=play]').addEventListener('click', () => { window.__click = performance.now(); }, {capture: true})"
                )
                await page.click("button[data-op=play]")
                await page.wait_for_function("() => window.__starts.length > 0", timeout=60_000)
                first = await page.evaluate("window.__starts[0] - window.__click")
                await page.select_option(".player select[name=speed]", "2")
                peak_kb, t_end = idle_kb, time.monotonic() + play_s
                scanned_ms = None
                seeked = False
                while time.monotonic() < t_end:
                    peak_kb = max(peak_kb, renderer_rss_kb(pid))
                    if scanned_ms is None and await page.evaluate(
                        "!!document.querySelector('.player[data-scanned]')"
                    ):
                        scanned_ms = await page.evaluate("performance.now() - window.__click")
                    if not seeked and time.monotonic() > t_end - play_s / 3:
                        await page.evaluate(
                            "() => { const r = document.querySelector('.player input[type=range]'); r.value = '900';"
                            " r.dispatchEvent(new Event('change')); }"
                        )
                        seeked = True
                    await asyncio.sleep(0.25)
                if scanned_ms is None:
                    await page.wait_for_selector(".player[data-scanned]", timeout=300_000)
                    scanned_ms = await page.evaluate("performance.now() - window.__click")
                heap = await page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
            finally:
                await browser.close()
    finally:
        lab.index.close()
        lab.users.close()
    return {
        "minutes": minutes,
        "ciphertext_mib": rec.bytes / 2**20,
        "make_s": make_s,
        "first_audio_ms": first,
        "waveform_ms": scanned_ms,
        "renderer_rss_idle_mib": idle_kb / 1024,
        "renderer_rss_peak_mib": peak_kb / 1024,
        "main_heap_mib": heap / 2**20,
    }


def browser_pid(browser: Any) -> int:
    """The chromium process Playwright launched (the newest browser process of ours)."""
    best = 0
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            c = cmd.read_bytes()
        except OSError:
            continue
        if b"chromium" in c and b"--type=" not in c and b"--remote-debugging-pipe" in c:
            best = max(best, int(cmd.parent.name))
    return best


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 60])
    ap.add_argument("--play-s", type=float, default=20)
    args = ap.parse_args()
    exe = require_tool("chromium")
    from playwright.async_api import async_playwright

    results = []
    async with async_playwright() as p:
        for m in args.minutes:
            with tempfile.TemporaryDirectory(prefix="bench-review-") as d:
                results.append(await one(m, args.play_s, Path(d), p, exe))
                print(json.dumps(results[-1]), flush=True)
    base = results[0]
    print(
        f"\nmachine: {platform.machine()}, {platform.python_version()}, cores {__import__('os').cpu_count()}"
    )
    print(
        "| recording | ciphertext | first audio | waveform done | renderer PSS peak (idle) | main-thread heap |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['minutes']:g} min | {r['ciphertext_mib']:.1f} MiB | {r['first_audio_ms']:.0f} ms "
            f"(×{r['first_audio_ms'] / base['first_audio_ms']:.2f}) | {r['waveform_ms'] / 1000:.1f} s | "
            f"{r['renderer_rss_peak_mib']:.0f} MiB ({r['renderer_rss_idle_mib']:.0f}) "
            f"(×{r['renderer_rss_peak_mib'] / base['renderer_rss_peak_mib']:.2f}) | {r['main_heap_mib']:.1f} MiB |"
        )


if __name__ == "__main__":
    asyncio.run(main())
