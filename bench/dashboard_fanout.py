"""Benchmark: dashboard fan-out. 200 live calls changing state, 50 open dashboards.

    .venv/bin/python bench/dashboard_fanout.py --calls 200 --dashboards 50 --seconds 20

Three processes, so that each one's CPU is its own:
- this one publishes worker events through the real EventBus (one bus per 20 calls), at the
  rate real workers do: call.progress once a second for every
  recording call, and a full call life (started, deciding, consent, dialling, bridged,
  recording, ended) every `--cycle` seconds per call slot;
- the supervisor side (`serve`): the real WorkerLinks and the real dashboard application;
- the dashboards (`clients`): N logged-in WebSocket sessions that time every call update
  from the worker's publish time (`ts`) to its arrival.

Two phases in the same run with the same event load: no dashboard open (baseline), then N.
Reported: the supervisor side's CPU (per cent of one core) in each phase and their ratio,
events per second, WebSocket messages per second, and the event-to-dashboard delay
percentiles. The delay is to the WebSocket message's arrival in the client, not to the
browser's paint (the page applies a message in the same task; the browser test shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "benchmark password"


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- supervisor side ----------------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from gateway.accounts.users import UserStore
    from gateway.config import DashboardConfig
    from gateway.dashboard.app import Dashboard, build_app
    from gateway.storage.index import SqliteIndex
    from gateway.supervisor.links import WorkerLinks

    data = Path(args.dir)
    links = WorkerLinks()
    users = UserStore(data / "users.sqlite3", lockout_after=1000)
    dash = Dashboard(
        DashboardConfig(),
        users,
        SqliteIndex(data / "index.sqlite3"),
        spool_dir=data,
        node_status=lambda: {"workers": [], "capacity_calls": 0, "failopen": 0},
        command=links.command,
    )
    links.observers.append(dash.on_event)
    links.on_lost.append(dash.on_link_lost)
    for i, sock in enumerate(args.sockets):
        asyncio.create_task(links.follow(i, Path(sock), lambda: True))
    runner = web.AppRunner(build_app(dash), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    print("serving", flush=True)
    await asyncio.Event().wait()


# -- dashboards ---------------------------------------------------------------------------------


async def clients(args: argparse.Namespace) -> None:
    from aiohttp import ClientSession, CookieJar

    base = f"http://127.0.0.1:{args.port}"
    sessions = []
    for _ in range(args.n):
        s = ClientSession(cookie_jar=CookieJar(unsafe=True))
        page = await (await s.get(f"{base}/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        r = await s.post(
            f"{base}/login",
            data={"csrf": token, "name": "bench", "password": PASSWORD},
            allow_redirects=False,
        )
        assert r.status == 303, r.status
        sessions.append(s)
    sockets = [await s.ws_connect(f"{base}/ws", origin=base, max_msg_size=0) for s in sessions]
    delays: list[float] = []
    messages = 0
    measuring = False

    async def read(ws) -> None:
        nonlocal messages
        async for msg in ws:
            m = json.loads(msg.data)
            if not measuring:
                continue
            messages += 1
            if m.get("t") == "call" and m["call"].get("ts"):
                delays.append(time.time() - m["call"]["ts"])

    tasks = [asyncio.create_task(read(ws)) for ws in sockets]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    measuring = True
    await asyncio.sleep(args.seconds)
    measuring = False
    for t in tasks:
        t.cancel()
    for s in sessions:
        await s.close()
    Path(args.out).write_text(json.dumps({"delays": delays, "messages": messages}))


# -- event publisher (this process) --------------------------------------------------------------

LIFE = [
    ("call.state", {"state": "deciding", "consent": "pending", "recording": "none"}),
    ("call.consent", {"consent": "granted", "reason": "silence"}),
    ("call.state", {"state": "dialling", "consent": "granted", "recording": "none"}),
    ("call.recording", {"recording": "recording", "recording_id": "r"}),
    ("call.state", {"state": "bridged", "consent": "granted", "recording": "recording"}),
]


async def publish(buses, calls_per_bus: int, cycle_s: float, stop: asyncio.Event, counter: list[int]) -> None:
    """Each call slot lives `cycle_s`: started, its life events in the first 3 s, progress once
    a second, ended; then a new call takes the slot."""
    n = 0
    slots = [(bus, i) for bus in buses for i in range(calls_per_bus)]
    t0 = time.monotonic()
    offsets = {slot: k * cycle_s / len(slots) for k, slot in enumerate(slots)}  # spread the starts
    state = {slot: None for slot in slots}  # (call id, started at)
    while not stop.is_set():
        now = time.monotonic() - t0
        for slot in slots:
            bus, _ = slot
            cur = state[slot]
            if cur is None or now - cur[1] >= cycle_s:
                if cur is not None:
                    bus.publish(
                        {
                            "type": "call.state",
                            "call": cur[0],
                            "state": "ended",
                            "consent": "granted",
                            "recording": "saving",
                            "reason": "caller hung up",
                        }
                    )
                    n += 1
                if cur is None and now < offsets[slot]:
                    continue
                call = os.urandom(8).hex()
                state[slot] = (call, now, 0, 0)
                bus.publish(
                    {
                        "type": "call.started",
                        "call": call,
                        "state": "notice",
                        "route": "1177",
                        "mode": "opt-out",
                        "caller_display": "Caller",
                        "caller_masked": "*********567",
                    }
                )
                n += 1
                continue
            call, started, step, last = cur
            age_s = now - started
            if step < len(LIFE) and age_s >= 0.5 * (step + 1):
                kind, fields = LIFE[step]
                bus.publish({"type": kind, "call": call, **fields})
                state[slot] = (call, started, step + 1, int(age_s))
                n += 1
            elif step >= len(LIFE) and int(age_s) > last:
                state[slot] = (call, started, step, int(age_s))
                bus.publish(
                    {
                        "type": "call.progress",
                        "call": call,
                        "bytes_sealed": int(age_s * 32_000),
                        "duration_s": round(age_s, 1),
                        "frames_overflowed": 0,
                    }
                )
                n += 1
        counter[0] = n
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> None:
    from gateway.accounts.users import UserStore
    from gateway.storage.index import SqliteIndex
    from gateway.telephony.events import EventBus
    from gateway.telephony.net import free_port

    tmp = Path(tempfile.mkdtemp(prefix="fanout-"))
    SqliteIndex(tmp / "index.sqlite3", create=True).close()
    UserStore(tmp / "users.sqlite3").add("bench", "viewer", PASSWORD)
    n_buses = max(1, args.calls // 20)
    buses = [EventBus(tmp / f"w{i}.sock", f"bench:{i}") for i in range(n_buses)]
    for b in buses:
        await b.start()
    port = free_port()
    py = sys.executable
    me = str(Path(__file__).resolve())
    server = await asyncio.create_subprocess_exec(
        py,
        me,
        "serve",
        "--dir",
        str(tmp),
        "--port",
        str(port),
        "--sockets",
        *[str(b.path) for b in buses],
        stdout=subprocess.PIPE,
    )
    assert server.stdout is not None
    await server.stdout.readline()
    stop = asyncio.Event()
    counter = [0]
    pub = asyncio.create_task(publish(buses, args.calls // n_buses, args.cycle, stop, counter))
    await asyncio.sleep(args.cycle + 2)  # every slot has a live call

    async def phase(label: str, dashboards: int) -> dict:
        client = None
        if dashboards:
            out = tmp / "clients.json"
            client = await asyncio.create_subprocess_exec(
                py,
                me,
                "clients",
                "--port",
                str(port),
                "--n",
                str(dashboards),
                "--seconds",
                str(args.seconds),
                "--out",
                str(out),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert client.stdout is not None and client.stdin is not None
            await client.stdout.readline()
            await asyncio.sleep(1.0)
            client.stdin.write(b"go\n")
            await client.stdin.drain()
        c0, e0, t0 = cpu_s(server.pid), counter[0], time.monotonic()
        await asyncio.sleep(args.seconds)
        c1, e1, t1 = cpu_s(server.pid), counter[0], time.monotonic()
        result = {
            "phase": label,
            "dashboards": dashboards,
            "cpu_pct": 100 * (c1 - c0) / (t1 - t0),
            "events_per_s": (e1 - e0) / (t1 - t0),
        }
        if client is not None:
            await client.wait()
            data = json.loads((tmp / "clients.json").read_text())
            d = sorted(data["delays"])
            result["ws_messages_per_s"] = data["messages"] / args.seconds
            if d:
                q = statistics.quantiles(d, n=100)
                result.update(
                    delay_p50_ms=1000 * q[49],
                    delay_p99_ms=1000 * q[98],
                    delay_max_ms=1000 * d[-1],
                    samples=len(d),
                )
        return result

    base = await phase("baseline", 0)
    load = await phase("dashboards", args.dashboards)
    stop.set()
    await pub
    server.terminate()
    await server.wait()
    for b in buses:
        await b.close()
    print(json.dumps([base, load], indent=1))
    print(f"\n{args.calls} live calls, cycle {args.cycle:.0f} s, {base['events_per_s']:.0f} events/s")
    print(
        f"supervisor side CPU: {base['cpu_pct']:.1f} % of a core with no dashboard, "
        f"{load['cpu_pct']:.1f} % with {args.dashboards} (ratio {load['cpu_pct'] / max(base['cpu_pct'], 0.1):.1f})"
    )
    if "delay_p99_ms" in load:
        print(
            f"event -> dashboard delay: p50 {load['delay_p50_ms']:.0f} ms, p99 {load['delay_p99_ms']:.0f} ms, "
            f"max {load['delay_max_ms']:.0f} ms over {load['samples']} updates; "
            f"{load['ws_messages_per_s']:.0f} WebSocket messages/s"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--dir")
    s.add_argument("--port", type=int)
    s.add_argument("--sockets", nargs="+")
    c = sub.add_parser("clients")
    c.add_argument("--port", type=int)
    c.add_argument("--n", type=int)
    c.add_argument("--seconds", type=float)
    c.add_argument("--out")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--dashboards", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--cycle", type=float, default=20.0, help="seconds a simulated call lasts")
    a = ap.parse_args()
    if a.cmd == "serve":
        asyncio.run(serve(a))
    elif a.cmd == "clients":
        asyncio.run(clients(a))
    else:
        asyncio.run(main(a))
