"""The error table: code → action → what happens to the send and what else Tagwerk does."""

from __future__ import annotations

import pytest

from campaigns.errors import (
    ERROR_ACTIONS,
    POLICIES,
    Action,
    Consequence,
    SendFate,
    action_for,
)
from campaigns.sending import CONSEQUENCES, FATES


def test_every_action_has_a_policy_and_every_policy_a_handler():
    assert set(POLICIES) == set(Action)
    assert {p.fate for p in POLICIES.values()} <= set(FATES)
    assert {p.then for p in POLICIES.values()} - {Consequence.NONE} <= set(CONSEQUENCES)


@pytest.mark.parametrize(("code", "delays"), [
    (131056, [1, 4, 16, 64]),   # that recipient: 4^X seconds
    (131000, [2, 4]),           # 5xx: few tries, the outcome is ambiguous on Meta's side
    (130429, [1] * 9),          # the whole number is slowed (the bucket), the message waits 1 s
    (4, [5] * 9),
    (131057, [60] * 4),         # maintenance
])
def test_retries_wait_as_the_reference_says_then_fail(code, delays):
    policy = POLICIES[action_for(code)]
    assert policy.fate == SendFate.RETRY
    # The attempt that reaches ``tries`` fails the send instead of waiting again.
    assert [policy.delay(attempt) for attempt in range(1, policy.tries)] == delays


def test_only_number_wide_limits_push_the_bucket_back():
    assert {action for action, p in POLICIES.items() if p.slows} == {Action.SLOW_NUMBER}
    assert {action for action, p in POLICIES.items() if p.pause} == {Action.GLOBAL_BACKOFF}
    assert POLICIES[Action.GLOBAL_BACKOFF].pause == 5.0


@pytest.mark.parametrize(("code", "fate", "then", "stops"), [
    (131026, SendFate.FAIL, Consequence.NONE, False),
    (131047, SendFate.FAIL, Consequence.NONE, False),
    (131049, SendFate.DEFER, Consequence.NONE, False),
    (131050, SendFate.FAIL, Consequence.OPT_OUT, False),
    (131048, SendFate.HOLD, Consequence.PAUSE, True),
    (132001, SendFate.FAIL, Consequence.ABORT, True),
    (368, SendFate.HOLD, Consequence.STOP_SENDER, True),
    (190, SendFate.HOLD, Consequence.STOP_SENDER, True),
])
def test_what_happens_to_the_send_and_beyond_it(code, fate, then, stops):
    policy = POLICIES[ERROR_ACTIONS[code]]
    assert (policy.fate, policy.then, policy.stops_sending) == (fate, then, stops)


def test_unknown_codes_follow_the_http_status():
    assert action_for(999999, 503) == Action.RETRY_LIMITED
    assert action_for(None, 401) == Action.STOP_ALL
    assert action_for(999999, 400) == Action.FAIL_RECIPIENT
    assert action_for(None) == Action.FAIL_RECIPIENT
