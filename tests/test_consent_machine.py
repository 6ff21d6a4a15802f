from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.consent.machine import (
    MAX_DIGITS_KEPT,
    Confirm,
    ConsentMachine,
    Decide,
    Decision,
    Mode,
    State,
    StopNotice,
    Withdraw,
)
from gateway.consent.receipt import PromptPlayed, build, digest


def machine(mode: Mode = Mode.OPT_OUT) -> ConsentMachine:
    return ConsentMachine(mode=mode, notice_s=6.0, grace_s=3.0)


def test_opt_out_decline_key_barges_in() -> None:
    m = machine()
    assert m.on_digit("5", 1.0) == []
    actions = m.on_digit("9", 2.5)
    assert actions == [StopNotice(), Decide(Decision.DECLINED, "decline key"), Confirm("declined")]
    assert not m.recording_allowed and m.deadline is None
    assert [(d.digit, d.t, d.effect) for d in m.digits] == [("5", 1.0, "ignored"), ("9", 2.5, "decline")]
    assert m.on_tick(100) == []  # decided once, for good


def test_opt_out_silence_grants_only_after_notice_and_grace() -> None:
    m = machine()
    assert m.on_tick(8.99) == [] and m.state is State.NOTICE
    assert m.on_tick(9.0) == [Decide(Decision.GRANTED, "no decline key before the deadline")]
    assert m.recording_allowed


def test_opt_in_accept_key_grants_silence_declines() -> None:
    m = machine(Mode.OPT_IN)
    assert m.on_digit("9", 1.0) == []  # the opt-out key means nothing here
    assert m.on_digit("1", 2.0)[1] == Decide(Decision.GRANTED, "accept key")
    m2 = machine(Mode.OPT_IN)
    assert m2.on_tick(9.0) == [Decide(Decision.DECLINED, "no accept key before the deadline")]


def test_withdrawal_sequence_after_granting() -> None:
    m = machine()
    m.on_tick(9.0)
    assert m.on_digit("*", 20.0) == []
    assert m.on_digit("9", 21.0) == [Withdraw(), Confirm("withdrawn")]
    assert m.state is State.WITHDRAWN and m.withdrawn_t == 21.0 and not m.recording_allowed


def test_withdrawal_sequence_must_be_prompt() -> None:
    m = machine()
    m.on_tick(9.0)
    m.on_digit("*", 20.0)
    assert m.on_digit("9", 30.0) == []  # too long after the star
    assert m.state is State.DECIDED


def test_a_key_after_the_deadline_is_too_late() -> None:
    m = machine()
    actions = m.on_digit("9", 9.5)
    assert actions == [Decide(Decision.GRANTED, "no decline key before the deadline")]
    assert m.recording_allowed and m.digits == []


def test_hangup_before_deciding_is_abandoned() -> None:
    m = machine()
    m.on_hangup(3.0)
    assert m.state is State.ABANDONED and m.decision is None and m.on_tick(20) == []


def test_digit_flood_is_bounded() -> None:
    m = machine()
    for i in range(10_000):
        m.on_digit("5", i * 0.0001)
    assert len(m.digits) == MAX_DIGITS_KEPT and m.digits_dropped == 10_000 - MAX_DIGITS_KEPT


@example(mode=Mode.OPT_OUT, events=[("*", 9.0), ("9", 9.0)])
@given(
    mode=st.sampled_from(list(Mode)),
    events=st.lists(
        st.tuples(
            st.sampled_from(list("0123456789*#") + ["tick"]),
            st.floats(min_value=0, max_value=30, allow_nan=False),
        ),
        max_size=40,
    ),
)
def test_any_event_sequence_decides_at_most_once_and_by_the_rules(mode: Mode, events) -> None:
    m = machine(mode)
    decides = []
    for what, t in sorted(events, key=lambda e: e[1]):
        actions = m.on_tick(t) if what == "tick" else m.on_digit(what, t)
        decides += [a for a in actions if isinstance(a, Decide)]
    assert len(decides) <= 1
    if decides:
        # The decisive key counted (a "9" at the deadline that completes "*9" is a withdrawal,
        # not a decline: hypothesis found that one).
        pressed_before = [d for d in m.digits if d.effect in ("decline", "accept")]
        if pressed_before:  # a decisive key decides the way the mode says
            assert m.decision is (Decision.DECLINED if mode is Mode.OPT_OUT else Decision.GRANTED)
        else:  # silence decides the other way, and never before the deadline
            assert m.decided_t is not None and m.decided_t >= 9.0
            assert m.decision is (Decision.GRANTED if mode is Mode.OPT_OUT else Decision.DECLINED)
    # No key counts as decisive once the deadline has passed.
    assert all(d.t <= 9.0 for d in m.digits if d.effect in ("decline", "accept"))


def test_receipt_holds_prompt_digits_and_decision() -> None:
    m = machine()
    m.on_digit("3", 0.8, "rfc4733")
    m.on_digit("9", 1.25, "inband")
    prompt = PromptPlayed("notice", "1", "en", "a" * 64, 1250, "b" * 64)
    r = build(
        m,
        call_id="c1",
        route="helpline",
        prompt=prompt,
        answered_at="2026-11-25T10:00:00Z",
        decided_at="2026-11-25T10:00:01.250Z",
    )
    assert r["decision"] == "declined" and r["reason"] == "decline key" and r["mode"] == "opt-out"
    assert r["prompt"]["sha256"] == "a" * 64 and r["prompt"]["played_ms"] == 1250
    assert r["digits"] == [
        {"digit": "3", "t": 0.8, "effect": "ignored", "via": "rfc4733"},
        {"digit": "9", "t": 1.25, "effect": "decline", "via": "inband"},
    ]
    assert len(digest(r)) == 64 and digest(r) == digest(dict(r))


def test_a_decision_signalled_by_a_recording_client_counts_once_and_only_while_deciding() -> None:
    m = ConsentMachine(Mode.OPT_OUT, 0.0, 12.0)
    [decide] = m.on_signalled(Decision.DECLINED, 0.0, "header")
    assert isinstance(decide, Decide) and decide.decision is Decision.DECLINED
    assert m.reason == "signalled by the recording client (header)"
    assert m.on_signalled(Decision.GRANTED, 1.0, "metadata") == [] and m.decision is Decision.DECLINED
    assert m.on_digit("9", 2.0) == [] and m.on_tick(20.0) == []
    late = ConsentMachine(Mode.OPT_OUT, 0.0, 12.0)
    late.on_digit("9", 3.0)  # the caller's key decided first
    assert late.on_signalled(Decision.GRANTED, 4.0, "header") == [] and late.decision is Decision.DECLINED
