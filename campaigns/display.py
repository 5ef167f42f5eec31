"""Codes as sentences: WhatsApp (Meta) error codes, send statuses and exclusion reasons.

A display layer only: the stored codes stay as they are (reports, exports and the error
table in ``campaigns.errors`` keep using them). Every sentence says what happened and
what to do, in the reader's language.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.models import ExclusionReason, SendStatus

# code → (what it means, what to do). Meta's own titles are in campaigns.errors.TITLES.
ERROR_TEXT: dict[int, tuple[str, str]] = {
    0: (gettext_lazy("WhatsApp could not confirm the sending account (authentication)."),
        gettext_lazy("Check the access token in the settings; sending from this number has "
                     "stopped until an operator resumes it.")),
    4: (gettext_lazy("Too many calls to WhatsApp from this app."),
        gettext_lazy("Nothing to do: Tagwerk waits and retries by itself.")),
    190: (gettext_lazy("The access token has expired or was revoked."),
          gettext_lazy("Create a new token in Meta's business settings and store it; then "
                       "resume the number under Sending numbers.")),
    368: (gettext_lazy("The sending account is temporarily blocked for policy violations."),
          gettext_lazy("Read Meta's notice in WhatsApp Manager; resume the number only after "
                       "the block is lifted.")),
    80007: (gettext_lazy("The WhatsApp Business Account hit its rate limit."),
            gettext_lazy("Nothing to do: Tagwerk waits and retries by itself.")),
    130429: (gettext_lazy("The number sent faster than WhatsApp allows."),
             gettext_lazy("Nothing to do: Tagwerk slows the number down and retries.")),
    130472: (gettext_lazy("The recipient is part of a WhatsApp experiment and did not get "
                          "marketing messages."),
             gettext_lazy("Nothing to do; the message is not retried.")),
    131000: (gettext_lazy("Something went wrong at WhatsApp."),
             gettext_lazy("Tagwerk retried a few times; if many messages fail this way, try "
                          "again later.")),
    131016: (gettext_lazy("WhatsApp was unavailable."),
             gettext_lazy("Tagwerk retried a few times; try again later.")),
    131026: (gettext_lazy("The message could not be delivered: the number may not use "
                          "WhatsApp, or uses an old app version."),
             gettext_lazy("Check the number with the customer; remove it if it is wrong.")),
    131030: (gettext_lazy("The recipient is not on the test number's allowed list."),
             gettext_lazy("Add the number in Meta's developer settings, or send from the "
                          "production number.")),
    131031: (gettext_lazy("The WhatsApp Business Account is locked."),
             gettext_lazy("Read Meta's notice in WhatsApp Manager; sending has stopped.")),
    131042: (gettext_lazy("There is a payment problem with the WhatsApp Business Account."),
             gettext_lazy("Fix the payment method in Meta's business settings, then resume "
                          "the number.")),
    131047: (gettext_lazy("More than 24 hours have passed since the customer last wrote; only "
                          "a template may be sent."),
             gettext_lazy("Send an approved template instead of a free-form message.")),
    131048: (gettext_lazy("Too many people blocked or reported this number: WhatsApp limits "
                          "its sending."),
             gettext_lazy("The campaign was paused. Improve the message and the audience "
                          "before resuming.")),
    131049: (gettext_lazy("WhatsApp held the message back to keep the customer from getting "
                          "too much marketing."),
             gettext_lazy("Nothing to do: Tagwerk retries later by itself.")),
    131050: (gettext_lazy("The customer stopped marketing messages in WhatsApp."),
             gettext_lazy("The contact is marked as opted out; do not message them again "
                          "unless they opt in.")),
    131056: (gettext_lazy("Too many messages to the same customer in a short time."),
             gettext_lazy("Nothing to do: Tagwerk retries that customer a little later.")),
    131057: (gettext_lazy("The WhatsApp Business Account is in maintenance."),
             gettext_lazy("Nothing to do: Tagwerk retries in a minute.")),
    132000: (gettext_lazy("The template's variables do not match what WhatsApp approved."),
             gettext_lazy("Check the template's variables against WhatsApp Manager; the "
                          "campaign was stopped.")),
    132001: (gettext_lazy("The template does not exist in this language at WhatsApp."),
             gettext_lazy("Check the template name and language code against WhatsApp "
                          "Manager; the campaign was stopped.")),
    132015: (gettext_lazy("WhatsApp paused the template for low quality."),
             gettext_lazy("Edit the template in WhatsApp Manager or choose another one.")),
    132016: (gettext_lazy("WhatsApp disabled the template for low quality."),
             gettext_lazy("Create a new template; this one can no longer be used.")),
}


def error_meaning(code) -> str:
    """“131026 — The message could not be delivered … Check the number …”."""
    if code in (None, "", "unknown"):
        return _("Unknown error: WhatsApp gave no code.")
    try:
        code = int(code)
    except (TypeError, ValueError):
        return str(code)
    meaning, todo = ERROR_TEXT.get(code, (None, None))
    if meaning is None:
        return _("WhatsApp error %(code)d: see Meta's error code list; the message was not "
                 "sent.") % {"code": code}
    return _("%(meaning)s %(todo)s (WhatsApp error %(code)d)") % {
        "meaning": meaning, "todo": todo, "code": code}


def status_label(status: str) -> str:
    return str(SendStatus(status).label) if status in SendStatus.values else status


def exclusion_label(reason: str) -> str:
    """An exclusion reason as a sentence a marketer reads."""
    sentences = {
        ExclusionReason.ALREADY: _("already got this campaign"),
        ExclusionReason.BLOCKLISTED: _("blocklisted: never messaged"),
        ExclusionReason.OPTED_OUT: _("opted out of marketing"),
        ExclusionReason.NO_CONSENT: _("no marketing consent yet"),
        ExclusionReason.INVALID_NUMBER: _("phone number not valid for WhatsApp"),
        ExclusionReason.SUPPRESSED: _("left out by the suppression expression"),
        ExclusionReason.FREQUENCY_CAP: _("got enough marketing messages recently "
                                         "(frequency cap)"),
    }
    return str(sentences.get(reason, reason))
