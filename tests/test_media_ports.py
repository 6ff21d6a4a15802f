"""Media ports against a real pjsua2 conference bridge (in a child process: the bug this guards
against is a segmentation fault)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CYCLE = re.compile(r"(\d+) (\d+)")


def test_ports_dropped_while_audio_flows_do_not_crash_the_process() -> None:
    # A worker stopping mid-call dropped its ports while the bridge's clock was still calling
    # them; the gateway then died with a segfault or a TypeError from a half-destroyed port
    # (seen in CI). Without release_slots stopping the clock, this child crashes within 100 cycles (3 runs out of 3).
    done = subprocess.run(
        [sys.executable, "-m", "tests.ports_child", "100"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stdout.splitlines()  # pjlib's own start-up lines come first
    assert lines[-1] == "clean"
    heard = [int(m[2]) for m in map(CYCLE.fullmatch, lines) if m]
    # Audio really was flowing when the ports went: in nearly every cycle (a loaded machine, the
    # suite's parallel runners, can starve the clock for a whole 60 ms cycle now and then).
    assert len(heard) == 100 and sum(h > 0 for h in heard) >= 90, heard


def test_the_clock_threads_callbacks_keep_one_python_thread_state() -> None:
    """pjsua2 enters Python from pjmedia's clock thread for every frame of every port. Without
    osthreads.keep_thread_state each entry made and deleted a Python thread state (an mmap, a
    munmap and page faults each time: about 40 % of the clock thread's time under load). A
    thread-local counter, which lives in that state, shows it: it counts up only while the
    state is kept. A new clock thread (the sound device closed and opened again) is kept too."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.clock_child"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "clean"
    rounds = [[int(n) for n in line.split()] for line in lines[-3:-1]]
    for counts in rounds:
        assert len(counts) >= 3, rounds  # the clock ran (40 ms tap frames for 0.3 s)
        assert counts == list(range(1, len(counts) + 1)), rounds


def test_a_slot_puts_its_sources_on_the_bridge_only_once_used() -> None:
    """The bridge calls every port each tick, even one with nothing connected, so a slot's
    sources are made when first used (a recording session never plays; a call without whisper
    or beeps never uses the helper), and once only."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.slot_child"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "clean"
    base, made, source, aux, again = map(int, lines[-2].split())
    assert (made - base, source - made, aux - source, again - aux) == (2, 1, 1, 0), lines[-2]


def test_a_clock_thread_held_up_by_the_gil_loses_no_audio(tmp_path: Path) -> None:
    """A loaded worker's clock thread runs late and then catches up with a burst of ticks.
    The taps stamped each frame with the time its callback ran, so a burst's frames landed on
    top of each other: the recorder dropped them as overlaps and filled their time with
    silence. At 200 concurrent calls on two cores a tenth of the frames went that way, and
    this child lost about a third of each channel (127 and 139 of 198 frames). Stamped with
    the time they were due (frameclock.py), every frame is there."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.stall_child", str(tmp_path / "spool")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "clean"
    caller, helpline = ([int(x) for x in line.split()] for line in lines[-4:-2])
    gap, overlap, _late = map(int, lines[-2].split())
    for present, total in (caller, helpline):
        assert total >= 150 and present >= total - 2, lines[-4:]  # 4 s, both edges aside
    assert overlap == 0 and gap <= 2 * 160, lines[-2]
