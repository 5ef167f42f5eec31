"""Prometheus metrics of sending and webhooks, counted where the work happens.

``tagwerk_sends_total`` counts what the send loop did with each claimed send
(``campaigns.sending``); ``tagwerk_send_statuses_total`` counts the statuses
WhatsApp reported for them, each (message, status) once (``campaigns.statuses``).
Delivery rate = delivered / (sent + failed), read rate = read / delivered: the campaign
report's definitions (``campaigns.selectors``). Alert rules: docs/operations.md.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from campaigns.errors import ERROR_ACTIONS, TITLES

SENDS = Counter(
    "tagwerk_sends",
    "Claimed sends by what the send loop did: sent (accepted by WhatsApp), failed, retried, "
    "deferred (131049), ambiguous (no answer), skipped (not reachable any more); "
    "error_code is WhatsApp's code of a refusal (other: a code not in the error table).",
    ["status", "error_code"])
SEND_STATUSES = Counter(
    "tagwerk_send_statuses",
    "Statuses WhatsApp reported for our sends (sent, delivered, read, failed), each once; "
    "error_code is the code of a failed one.",
    ["status", "error_code"])
# Per process, summed over the live ones: what the send loops running now achieve, and the
# rate they were configured for (after WHATSAPP_RATE_HEADROOM). Both 0 between loops.
SEND_RATE = Gauge(
    "tagwerk_send_rate_achieved", "Messages per second the running send loops achieve, "
    "per sending number.", ["sender"], multiprocess_mode="livesum")
SEND_RATE_CONFIGURED = Gauge(
    "tagwerk_send_rate_configured", "Messages per second the running send loops may send, "
    "per sending number (0 when none runs).", ["sender"], multiprocess_mode="livemax")

WEBHOOKS_RECEIVED = Counter(
    "tagwerk_webhooks_received",
    "WhatsApp webhook requests by outcome: stored, duplicate (stored before), "
    "bad_signature, too_large.", ["outcome"])
WEBHOOKS_PROCESSED = Counter(
    "tagwerk_webhooks_processed",
    "Stored webhooks a drain finished: applied, or set_aside (see the admin's list).",
    ["outcome"])
WEBHOOK_LAG = Histogram(
    "tagwerk_webhook_lag_seconds",
    "Seconds from a webhook's receipt to its being applied (or set aside).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))


KNOWN_CODES = frozenset(ERROR_ACTIONS) | frozenset(TITLES)


def code_label(code: int | None) -> str:
    """The ``error_code`` label: a code of the error table as it is, any other "other".

    Each label value is a series of its own in Prometheus: codes WhatsApp adds, or a
    webhook body with odd numbers, must not grow them without bound. The send keeps the
    exact code (``Send.error_code``).
    """
    if code is None:
        return ""
    return str(code) if code in KNOWN_CODES else "other"
