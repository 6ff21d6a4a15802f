"""The review grant rules as a pure state machine (governance/grants.py): four eyes, roles,
expiry, revocation, and what a fetch needs. Examples first, then properties over any sequence
of moves by anyone at any time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.app.review import person
from gateway.governance import grants
from gateway.governance.grants import GrantRefused, Person, Policy, Refusal
from gateway.storage.rows import GrantRow, GrantState

REVIEWER = person("rita", "reviewer")
OTHER_REVIEWER = person("rob", "reviewer")
APPROVER = person("alma", "approver")
AUDITOR = person("aud", "auditor")
SUPERVISOR = person("sam", "supervisor")
OFFICER = person("olga", "officer")
DAY = Policy(four_eyes=True, grant_s=86400.0)


def asked(at: float = 1000.0) -> GrantRow:
    return grants.request("g1", "rec1", REVIEWER, "complaint", "caller complained about advice", at)


def refusal(fn, *args) -> Refusal:  # type: ignore[no-untyped-def]
    with pytest.raises(GrantRefused) as e:
        fn(*args)
    return e.value.refusal


def test_a_request_needs_the_reviewer_role_a_known_category_and_a_reason() -> None:
    g = asked()
    assert (g.state, g.requester, g.recording_id, g.category) == (
        GrantState.REQUESTED,
        "rita",
        "rec1",
        "complaint",
    )
    for who in (APPROVER, AUDITOR, SUPERVISOR, person("x", "admin")):
        assert refusal(grants.request, "g", "r", who, "quality", "because", 0.0) is Refusal.ROLE
    assert refusal(grants.request, "g", "r", REVIEWER, "curiosity", "because", 0.0) is Refusal.BAD_REQUEST
    assert refusal(grants.request, "g", "r", REVIEWER, "quality", "  ", 0.0) is Refusal.BAD_REQUEST
    assert refusal(grants.request, "g", "r", REVIEWER, "quality", "x" * 501, 0.0) is Refusal.BAD_REQUEST


def test_four_eyes_an_approver_who_is_not_the_requester_approves_for_a_limited_time() -> None:
    g = asked()
    assert refusal(grants.approve, g, REVIEWER, DAY, 1001.0) is Refusal.OWN_REQUEST
    assert refusal(grants.approve, g, OTHER_REVIEWER, DAY, 1001.0) is Refusal.ROLE
    assert refusal(grants.approve, g, AUDITOR, DAY, 1001.0) is Refusal.ROLE
    ok = grants.approve(g, APPROVER, DAY, 1001.0)
    assert ok.state is GrantState.APPROVED and ok.decided_by == "alma" and not ok.self_granted
    assert ok.expires_at == 1001.0 + 86400.0 and not ok.allow_download
    grants.check_fetch(ok, REVIEWER, "rec1", 1002.0)
    assert refusal(grants.check_fetch, ok, OTHER_REVIEWER, "rec1", 1002.0) is Refusal.NOT_YOURS
    assert refusal(grants.check_fetch, ok, APPROVER, "rec1", 1002.0) is Refusal.NOT_YOURS
    assert refusal(grants.check_fetch, ok, REVIEWER, "rec2", 1002.0) is Refusal.WRONG_RECORDING
    assert refusal(grants.approve, ok, person("al2", "approver"), DAY, 1003.0) is Refusal.DECIDED


def test_a_grant_expires_at_its_time_and_then_covers_nothing() -> None:
    ok = grants.approve(asked(), APPROVER, DAY, 1000.0)
    grants.check_fetch(ok, REVIEWER, "rec1", 1000.0 + 86399.9)
    assert grants.effective_state(ok, 1000.0 + 86400.0) is GrantState.EXPIRED
    assert refusal(grants.check_fetch, ok, REVIEWER, "rec1", 1000.0 + 86400.0) is Refusal.EXPIRED
    stored = grants.expire(ok, 1000.0 + 90000.0)
    assert (
        stored.state is GrantState.EXPIRED
        and stored.closed_by == "gateway"
        and stored.closed_at == ok.expires_at
    )
    assert refusal(grants.expire, stored, 10**9) is Refusal.DECIDED  # expired once
    assert refusal(grants.expire, ok, 1001.0) is Refusal.DECIDED  # not yet due
    assert refusal(grants.revoke, ok, APPROVER, 1000.0 + 86400.0) is Refusal.DECIDED


def test_revocation_by_an_approver_or_the_reviewer_ends_access_at_once() -> None:
    ok = grants.approve(asked(), APPROVER, DAY, 1000.0)
    assert refusal(grants.revoke, ok, OTHER_REVIEWER, 1001.0) is Refusal.ROLE
    for who in (APPROVER, person("al2", "approver"), REVIEWER):
        gone = grants.revoke(ok, who, 1001.0)
        assert gone.state is GrantState.REVOKED and gone.closed_by == who.name
        assert refusal(grants.check_fetch, gone, REVIEWER, "rec1", 1001.0) is Refusal.REVOKED
    withdrawn = grants.revoke(asked(), REVIEWER, 1001.0)  # a pending request withdrawn
    assert refusal(grants.approve, withdrawn, APPROVER, DAY, 1002.0) is Refusal.DECIDED


def test_a_denied_or_pending_request_covers_nothing_and_the_requester_cannot_deny() -> None:
    g = asked()
    assert refusal(grants.check_fetch, g, REVIEWER, "rec1", 1001.0) is Refusal.NOT_DECIDED
    assert refusal(grants.deny, g, REVIEWER, 1001.0) is Refusal.OWN_REQUEST
    assert refusal(grants.deny, g, OTHER_REVIEWER, 1001.0) is Refusal.ROLE
    no = grants.deny(g, APPROVER, 1001.0)
    assert no.state is GrantState.DENIED and no.decided_by == "alma"
    assert refusal(grants.check_fetch, no, REVIEWER, "rec1", 1002.0) is Refusal.DENIED
    assert refusal(grants.approve, no, APPROVER, DAY, 1002.0) is Refusal.DECIDED


def test_without_four_eyes_a_reviewer_grants_themselves_and_the_grant_says_so() -> None:
    small = Policy(four_eyes=False, grant_s=3600.0, allow_download=True)
    ok = grants.approve(asked(), REVIEWER, small, 1000.0)
    assert ok.self_granted and ok.decided_by == "rita" and ok.allow_download
    grants.check_download(ok, REVIEWER, 1001.0)
    assert refusal(grants.approve, asked(), OTHER_REVIEWER, small, 1000.0) is Refusal.ROLE
    listen_only = grants.approve(asked(), APPROVER, DAY, 1000.0)
    assert refusal(grants.check_download, listen_only, REVIEWER, 1001.0) is Refusal.NO_DOWNLOAD


def test_who_sees_a_request() -> None:
    g = asked()
    assert grants.visible(g, REVIEWER) and grants.visible(g, APPROVER) and grants.visible(g, AUDITOR)
    assert not grants.visible(g, OTHER_REVIEWER) and not grants.visible(g, SUPERVISOR)


# -- properties ------------------------------------------------------------------------------

PEOPLE = [REVIEWER, OTHER_REVIEWER, APPROVER, person("al2", "approver"), AUDITOR, SUPERVISOR, OFFICER]
MOVES = st.lists(
    st.tuples(
        st.sampled_from(["approve", "deny", "revoke", "expire", "fetch", "erase"]),
        st.sampled_from(PEOPLE),
        st.floats(min_value=0, max_value=10_000),  # seconds after the previous move
    ),
    max_size=12,
)
ALLOWED = {
    GrantState.REQUESTED: {GrantState.APPROVED, GrantState.DENIED, GrantState.REVOKED},
    GrantState.APPROVED: {GrantState.REVOKED, GrantState.EXPIRED},
}


@settings(max_examples=400, deadline=None)
@given(
    moves=MOVES,
    four_eyes=st.booleans(),
    grant_s=st.floats(min_value=60, max_value=5000),
    erasure=st.booleans(),
)
def test_any_sequence_of_moves_keeps_the_rules(
    moves: list[tuple[str, Person, float]], four_eyes: bool, grant_s: float, erasure: bool
) -> None:
    policy = Policy(four_eyes=four_eyes, grant_s=grant_s)
    now = 1000.0
    g = (
        grants.request("g1", "rec1", OFFICER, "erasure", "subject asked for erasure, ref 118", now)
        if erasure
        else asked(now)
    )
    for move, who, dt in moves:
        now += dt
        before = g
        try:
            if move == "approve":
                g = grants.approve(g, who, policy, now)
            elif move == "deny":
                g = grants.deny(g, who, now)
            elif move == "revoke":
                g = grants.revoke(g, who, now)
            elif move == "expire":
                g = grants.expire(g, now)
            elif move == "erase":
                grants.check_erase(g, who, now)
                # An erasure passes only under an approved erasure grant, for the officer who
                # asked, in time.
                assert erasure and who is OFFICER and g.state is GrantState.APPROVED
                assert g.decided_at is not None and g.expires_at is not None
                assert g.decided_at <= now < g.expires_at
                continue
            else:
                grants.check_fetch(g, who, "rec1", now)
                # A fetch passes only for the requester, approved, in time, to listen.
                assert not erasure
                assert who.name == g.requester and g.state is GrantState.APPROVED
                assert g.expires_at is not None and g.decided_at is not None
                assert g.decided_at <= now < g.expires_at
        except GrantRefused:
            assert g is before
            continue
        if g.state is not before.state:
            assert g.state in ALLOWED.get(before.state, set()), (before.state, g.state)
        if g.state is GrantState.APPROVED:
            # Four eyes: nobody approves their own request unless the site turned it off.
            assert g.decided_by != g.requester or (not four_eyes and g.self_granted)
            assert g.expires_at == pytest.approx(g.decided_at + grant_s)  # type: ignore[operator]
        if g.state is GrantState.DENIED:
            assert g.decided_by != g.requester
        # The identity of the request never changes.
        assert (g.id, g.recording_id, g.requester, g.reason) == (
            before.id,
            before.recording_id,
            before.requester,
            before.reason,
        )


def test_an_erasure_is_the_officers_to_ask_needs_four_eyes_and_never_plays() -> None:
    assert refusal(grants.request, "g2", "rec1", REVIEWER, "erasure", "subject asked, ref 118", 1000.0) is (
        Refusal.ROLE
    )
    g = grants.request("g2", "rec1", OFFICER, "erasure", "subject asked, ref 118", 1000.0)
    assert refusal(grants.approve, g, OFFICER, DAY, 1001.0) is Refusal.OWN_REQUEST
    assert refusal(grants.check_erase, g, OFFICER, 1001.0) is Refusal.NOT_DECIDED
    ok = grants.approve(g, APPROVER, DAY, 1001.0)
    grants.check_erase(ok, OFFICER, 1002.0)
    assert refusal(grants.check_fetch, ok, OFFICER, "rec1", 1002.0) is Refusal.PURPOSE
    assert refusal(grants.check_erase, ok, APPROVER, 1002.0) is Refusal.NOT_YOURS
    assert refusal(grants.check_erase, ok, OFFICER, 1001.0 + 86400.0) is Refusal.EXPIRED
    done = grants.used(ok, 1003.0)
    assert refusal(grants.check_erase, done, OFFICER, 1004.0) is Refusal.REVOKED
    # A listening grant does not erase.
    listen = grants.approve(
        grants.request("g3", "rec1", OFFICER, "legal", "case 7, the tape", 1000.0), APPROVER, DAY, 1001.0
    )
    assert refusal(grants.check_erase, listen, OFFICER, 1002.0) is Refusal.PURPOSE
