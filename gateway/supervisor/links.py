"""The supervisor's connection to each worker's event socket: events in, commands out.

A link reads one worker's events for as long as the worker lives (reconnecting after a
restart) and hands each to the observers (metrics, the dashboard's live view). Commands for a
call go out on the link of the worker that published the call, and their replies come back
on the same stream (docs/events.md, "Commands").
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..callevents import CallState, EventType

log = logging.getLogger(__name__)
COMMAND_TIMEOUT_S = 5.0

Observer = Callable[[dict[str, Any], int], None]  # (event, link index)
LinkLost = Callable[[int], None]


class WorkerLinks:
    def __init__(self) -> None:
        self.observers: list[Observer] = []
        self.on_lost: list[LinkLost] = []
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._call_link: dict[str, int] = {}
        self._call_tenant: dict[str, str] = {}  # whose call it is (config/tenants.py; "": none)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._req = itertools.count(1)

    async def follow(self, index: int, path: Path, alive: Callable[[], bool]) -> None:
        """Read worker `index`'s events while `alive()`, reconnecting if the stream ends."""
        while alive():
            try:
                reader, writer = await asyncio.open_unix_connection(str(path))
            except OSError:
                await asyncio.sleep(0.2)
                continue
            self._writers[index] = writer
            try:
                async for line in reader:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        log.warning("unparseable event from %s", path)
                        continue
                    if not isinstance(event, dict):
                        continue
                    self._dispatch(index, event)
            except (ConnectionError, asyncio.LimitOverrunError, ValueError) as e:
                log.warning("event stream of worker %d broke: %s", index, e)
            finally:
                if self._writers.get(index) is writer:
                    del self._writers[index]
                writer.close()
                self._lost(index)
            await asyncio.sleep(0.2)

    def _dispatch(self, index: int, event: dict[str, Any]) -> None:
        if event.get("type") == EventType.CONTROL_RESULT:
            fut = self._pending.pop(event.get("req"), None)  # type: ignore[arg-type]
            if fut is not None and not fut.done():
                fut.set_result(event)
            return
        call = event.get("call")
        if isinstance(call, str):
            if event.get("type") == EventType.CALL_STATE and event.get("state") == CallState.ENDED:
                self._call_link.pop(call, None)
                self._call_tenant.pop(call, None)
            elif event.get("type") == EventType.CALL_STARTED or event.get("snapshot"):
                self._call_link[call] = index  # not on later events: "saved" follows "ended"
                tenant = event.get("tenant")
                self._call_tenant[call] = tenant if isinstance(tenant, str) else ""
        for observe in self.observers:
            try:
                observe(event, index)
            except Exception:
                log.exception("an event observer failed")

    def _lost(self, index: int) -> None:
        for call in [c for c, i in self._call_link.items() if i == index]:
            del self._call_link[call]
            self._call_tenant.pop(call, None)
        for lost in self.on_lost:
            try:
                lost(index)
            except Exception:
                log.exception("a link-lost observer failed")

    def owns(self, call: str) -> bool:
        """Is `call` live on one of this node's workers?"""
        return call in self._call_link

    def tenant_of(self, call: str) -> str:
        """The tenant of a live call here ("": none, or not a call of this node)."""
        return self._call_tenant.get(call, "")

    def connected(self, index: int) -> bool:
        return index in self._writers

    def calls_on(self, index: int) -> int:
        """Live calls the worker on link `index` has published and not yet ended."""
        return sum(1 for i in self._call_link.values() if i == index)

    async def ping(self, index: int, timeout_s: float = 2.0) -> bool:
        """The heartbeat: True if worker `index` answered within `timeout_s`."""
        writer = self._writers.get(index)
        if writer is None:
            return False
        return await self._request(writer, {"op": "ping"}, timeout_s) is not None

    async def _request(
        self, writer: asyncio.StreamWriter, body: dict[str, Any], timeout_s: float
    ) -> dict[str, Any] | None:
        req = next(self._req)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        try:
            writer.write((json.dumps({"req": req, **body}) + "\n").encode())
            await asyncio.wait_for(writer.drain(), timeout_s)
            return await asyncio.wait_for(fut, timeout_s)
        except (ConnectionError, TimeoutError):
            return None
        finally:
            self._pending.pop(req, None)

    async def command(self, op: str, call: str, actor: str) -> str | None:
        """Send a command for a live call to its worker; None on success, else why not."""
        index = self._call_link.get(call)
        writer = self._writers.get(index) if index is not None else None
        if writer is None:
            return "no such live call"
        reply = await self._request(writer, {"op": op, "call": call, "actor": actor}, COMMAND_TIMEOUT_S)
        if reply is None:
            return "the worker did not answer"
        return None if reply.get("ok") else str(reply.get("error") or "refused")
