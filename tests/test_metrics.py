"""The node's Prometheus counters, fed the workers' events directly."""

from gateway.callevents import CallState, EventType
from gateway.supervisor.metrics import Metrics


def overflowed_total(m: Metrics) -> int:
    [line] = [
        ln for ln in m.render({}).splitlines() if ln.startswith("gateway_recorder_frames_overflowed_total ")
    ]
    return int(line.split()[1])


def test_a_calls_overflow_count_outlives_the_call_but_its_entry_does_not() -> None:
    # The supervisor kept every recorded call's count in a table for its whole life.
    m = Metrics()
    for i in range(1000):
        call = f"call-{i}"
        m.observe({"type": EventType.CALL_STARTED, "call": call}, link=1)
        m.observe({"type": EventType.CALL_PROGRESS, "call": call, "frames_overflowed": 1})
        m.observe({"type": EventType.CALL_PROGRESS, "call": call, "frames_overflowed": 2})
        m.observe({"type": EventType.CALL_STATE, "call": call, "state": CallState.ENDED})
    m.observe({"type": EventType.CALL_STARTED, "call": "live"}, link=2)
    m.observe({"type": EventType.CALL_PROGRESS, "call": "live", "frames_overflowed": 5})
    m.observe({"type": EventType.CALL_STARTED, "call": "on-a-dead-worker"}, link=3)
    m.observe({"type": EventType.CALL_PROGRESS, "call": "on-a-dead-worker", "frames_overflowed": 7})
    assert overflowed_total(m) == 2000 + 5 + 7
    m.link_lost(3)
    assert overflowed_total(m) == 2000 + 5 + 7
    assert set(m.frames_overflowed) == {"live"} and set(m.call_state) == {"live"}
