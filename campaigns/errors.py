"""WhatsApp error codes → what Tagwerk does: one table, read by the send loop and the webhooks.

``ERROR_ACTIONS`` is the reference's §2 table (docs/campaigns.md): each code
names an ``Action``. ``POLICIES`` says, for each action, what happens to the
refused send (retried with its backoff, failed, deferred, or held back in the
queue) and what else Tagwerk does (opt the contact out, pause or abort the
campaign, stop the number). Campaign code branches on ``error.action`` only,
never on titles or HTTP statuses, and only through these two tables.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.StrEnum):
    """What the sender does about an error."""

    SLOW_NUMBER = "slow_number"            # 130429: slow the whole number, retry the message
    GLOBAL_BACKOFF = "global_backoff"      # 4, 80007: app/WABA call limit, retry later
    RETRY_RECIPIENT = "retry_recipient"    # 131056: back off that recipient 1/4/16/64 s
    PAUSE_CAMPAIGN = "pause_campaign"      # 131048: quality throttle, pause + alert
    FAIL_RECIPIENT = "fail_recipient"      # 131026, 131047, 130472, 131030
    DEFER_RECIPIENT = "defer_recipient"    # 131049: per-user marketing limit, retry hours later
    OPT_OUT = "opt_out"                    # 131050: fail and opt the contact out of marketing
    ABORT_CAMPAIGN = "abort_campaign"      # 132000, 132001, 132015, 132016
    STOP_ALL = "stop_all"                  # 368, 131031, 131042, 0, 190
    RETRY_LIMITED = "retry_limited"        # 131000, 131016, 5xx, connection refused
    RETRY_LATER = "retry_later"            # 131057 maintenance: retry after ~60 s


ERROR_ACTIONS: dict[int, Action] = {
    130429: Action.SLOW_NUMBER,
    4: Action.GLOBAL_BACKOFF,
    80007: Action.GLOBAL_BACKOFF,
    131056: Action.RETRY_RECIPIENT,
    131048: Action.PAUSE_CAMPAIGN,
    131047: Action.FAIL_RECIPIENT,
    131026: Action.FAIL_RECIPIENT,
    131049: Action.DEFER_RECIPIENT,
    130472: Action.FAIL_RECIPIENT,
    131030: Action.FAIL_RECIPIENT,
    131050: Action.OPT_OUT,
    132000: Action.ABORT_CAMPAIGN,
    132001: Action.ABORT_CAMPAIGN,
    132015: Action.ABORT_CAMPAIGN,
    132016: Action.ABORT_CAMPAIGN,
    368: Action.STOP_ALL,
    131031: Action.STOP_ALL,
    131042: Action.STOP_ALL,
    0: Action.STOP_ALL,
    190: Action.STOP_ALL,
    131000: Action.RETRY_LIMITED,
    131016: Action.RETRY_LIMITED,
    131057: Action.RETRY_LATER,
}

TITLES: dict[int, str] = {
    130429: "Rate limit hit",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131048: "Spam rate limit hit",
    131047: "Re-engagement message",
    131026: "Message undeliverable",
    131049: "This message was not delivered to maintain healthy ecosystem engagement",
    131050: "User stopped marketing messages",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    368: "Temporarily blocked for policies violations",
    131000: "Something went wrong",
    131016: "Service unavailable",
}


def action_for(code: int | None, http_status: int | None = None) -> Action:
    """The action for ``code``; unknown codes fall back on the HTTP status."""
    if code in ERROR_ACTIONS:
        return ERROR_ACTIONS[code]
    if http_status is not None and http_status >= 500:
        return Action.RETRY_LIMITED
    if http_status in (401, 403):
        return Action.STOP_ALL
    return Action.FAIL_RECIPIENT


class SendFate(enum.StrEnum):
    """What becomes of the refused send itself."""

    RETRY = "retry"    # queued again after the backoff; failed once the tries are used up
    FAIL = "fail"      # final, with its error code (for the report)
    DEFER = "defer"    # limited: queued again hours later (CAMPAIGNS_LIMITED_RETRY_HOURS)
    HOLD = "hold"      # queued again at once, for when the campaign or number resumes


class Consequence(enum.StrEnum):
    """What Tagwerk does beyond the send (also for a failed status webhook)."""

    NONE = ""
    OPT_OUT = "opt_out"            # opt the contact out of marketing, with a log entry
    PAUSE = "pause"                # pause the campaign and alert an operator
    ABORT = "abort"                # abort the campaign: every recipient would fail
    STOP_SENDER = "stop_sender"    # stop all sending from the number until an operator resumes


@dataclass(frozen=True)
class Policy:
    """One action's behaviour. A retry waits ``wait × growth^(attempt − 1)`` seconds."""

    fate: SendFate
    then: Consequence = Consequence.NONE
    tries: int = 0             # RETRY: the attempt at which the send fails instead
    wait: float = 0.0          # RETRY: seconds before the first retry
    growth: float = 1.0        # RETRY: factor per further attempt
    # The number's token bucket: ``slows`` reports a throughput refusal (130429: a short
    # push-back, a rate cut on a burst; campaigns.throttle); ``pause`` stops it (seconds).
    slows: bool = False
    pause: float = 0.0

    def delay(self, attempt: int) -> float:
        """Seconds until the retry after ``attempt`` (1 for the first refusal)."""
        return self.wait * self.growth ** (attempt - 1)

    @property
    def stops_sending(self) -> bool:
        """True when the send loop must stop (its campaign or number no longer sends)."""
        return self.then in (Consequence.PAUSE, Consequence.ABORT, Consequence.STOP_SENDER)


POLICIES: dict[Action, Policy] = {
    # Meta refuses "until you are within your allowed level again": one refusal pushes the
    # number back two slots; a burst of them halves its rate, which grows back within
    # seconds (AIMD, campaigns.throttle).
    Action.SLOW_NUMBER: Policy(SendFate.RETRY, tries=10, wait=1.0, slows=True),
    Action.GLOBAL_BACKOFF: Policy(SendFate.RETRY, tries=10, wait=5.0, pause=5.0),
    # Meta: retry that recipient after 4^X seconds (1, 4, 16, 64 s); others go on.
    Action.RETRY_RECIPIENT: Policy(SendFate.RETRY, tries=5, wait=1.0, growth=4.0),
    # The outcome of a 5xx is ambiguous on Meta's side, so few tries (2, 4 s).
    Action.RETRY_LIMITED: Policy(SendFate.RETRY, tries=3, wait=2.0, growth=2.0),
    Action.RETRY_LATER: Policy(SendFate.RETRY, tries=5, wait=60.0),
    Action.FAIL_RECIPIENT: Policy(SendFate.FAIL),
    Action.DEFER_RECIPIENT: Policy(SendFate.DEFER),
    Action.OPT_OUT: Policy(SendFate.FAIL, then=Consequence.OPT_OUT),
    Action.PAUSE_CAMPAIGN: Policy(SendFate.HOLD, then=Consequence.PAUSE),
    Action.ABORT_CAMPAIGN: Policy(SendFate.FAIL, then=Consequence.ABORT),
    Action.STOP_ALL: Policy(SendFate.HOLD, then=Consequence.STOP_SENDER),
}
