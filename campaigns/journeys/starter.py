"""The starter journeys of the source documents (PRODUCT.md §6–7), loaded switched off.

* Welcome on “Neukunde” (day 0) and a tip on day 3.
* Win-back when “Drohender Abwanderer” is added, with a voucher for non-responders
  after 3 days (§7: follow-ups reactivate ~10 % more).
* Reactivation offer for “Historischer Bestand - Reaktivierung erforderlich”.
* Birthday greeting on the day for contacts with “Geburtstag bald”.

Loading is idempotent by ``starter_key``: a starter journey that exists, even
edited, is left as it is. Their templates are created *pending*: a marketer
submits them in WhatsApp Manager, marks them approved, and switches the journey on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

from django.db import transaction

from campaigns.journeys.models import Journey, JourneyStep, JourneyTrigger, StepKind
from campaigns.models import TemplateStatus
from campaigns.services import template_create
from tagging.rules.starter_vocabulary import role_names, vocabulary
from tagging.vocabulary import vocabulary_ensure

DAYTIME = {"window_start": time(11, 0), "window_end": time(20, 0)}
SALUTATION = [{"source": "salutation_last_name"}]


@dataclass(frozen=True)
class StarterStep:
    kind: str
    template: str = ""  # a key of TEMPLATES
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StarterJourney:
    key: str
    name: str
    description: str
    trigger: str
    tag_role: str
    steps: tuple[StarterStep, ...]
    audience: str = ""  # "{role}" stands for a tag name
    exits: dict = field(default_factory=dict)


TEMPLATES = {
    "welcome": ("journey_welcome", "Willkommen, {{1}}! Schön, dass du da bist. Hier bekommst "
                "du Neuigkeiten und Angebote – abmelden jederzeit mit STOP."),
    "tip": ("journey_welcome_tip", "Hallo {{1}}, ein Tipp für den Anfang: Antworte einfach "
            "auf diese Nachricht, wenn du Fragen zu einem Produkt hast."),
    "winback": ("journey_winback", "Wir vermissen dich, {{1}}! Als Dankeschön: 15 % auf "
                "deinen nächsten Einkauf. Abmelden mit STOP."),
    "winback_voucher": ("journey_winback_voucher", "{{1}}, noch einmal für dich: ein "
                        "Gutschein über 20 € für deinen nächsten Einkauf. Abmelden mit STOP."),
    "reactivation": ("journey_reactivation", "{{1}}, als geschätzte Kundin / geschätzter "
                     "Kunde bekommst du exklusiv 25 % – nur diese Woche. Abmelden mit STOP."),
    "birthday": ("journey_birthday", "Alles Gute zum Geburtstag, {{1}}! 🎂 Dein "
                 "Geburtstagsgeschenk wartet im Shop. Abmelden mit STOP."),
}

STARTERS = [
    StarterJourney(
        "journey-welcome", "Willkommen: Neukunde (Tag 0 und Tag 3)",
        "Welcome when “Neukunde” is added, and a tip on day 3.",
        JourneyTrigger.TAG_ADDED, "new_customer",
        (StarterStep(StepKind.SEND, "welcome"),
         StarterStep(StepKind.WAIT, options={"wait_days": 3, **DAYTIME}),
         StarterStep(StepKind.SEND, "tip")),
        exits={"exit_on_purchase": False}),
    StarterJourney(
        "journey-winback", "Win-back: Drohender Abwanderer",
        "When “Drohender Abwanderer” is added: an offer, and a voucher after 3 days for "
        "those who neither replied nor bought.",
        JourneyTrigger.TAG_ADDED, "churn_risk",
        (StarterStep(StepKind.WAIT, options=DAYTIME),
         StarterStep(StepKind.SEND, "winback"),
         StarterStep(StepKind.WAIT, options={"wait_days": 3, **DAYTIME}),
         StarterStep(StepKind.SEND, "winback_voucher")),
        exits={"exit_on_reply": True, "exit_when_not_matching": True}),
    StarterJourney(
        "journey-reactivation", "Reaktivierung: Historischer Bestand",
        "A strong offer for sleeping VIPs moved to “Historischer Bestand - Reaktivierung "
        "erforderlich”.",
        JourneyTrigger.TAG_ADDED, "reactivation",
        (StarterStep(StepKind.WAIT, options=DAYTIME),
         StarterStep(StepKind.SEND, "reactivation")),
        exits={"exit_on_reply": True}),
    StarterJourney(
        "journey-birthday", "Geburtstagsgruß",
        "On the birthday of contacts holding “Geburtstag bald”, once a year.",
        JourneyTrigger.BIRTHDAY, "birthday_soon",
        (StarterStep(StepKind.WAIT, options={"window_start": time(9, 0),
                                             "window_end": time(20, 0)}),
         StarterStep(StepKind.SEND, "birthday")),
        audience='"{birthday_soon}"', exits={"exit_on_purchase": False}),
]


def journeys_load_starter(*, language: str = "de") -> tuple[int, int]:
    """Create the starter journeys that are missing, switched off; return (created, there)."""
    created = existing = 0
    names = role_names(language)
    with transaction.atomic():
        tags = vocabulary_ensure(vocabulary(language))
        known = set(Journey.objects.exclude(starter_key="").values_list("starter_key",
                                                                         flat=True))
        taken = set(Journey.objects.values_list("name", flat=True))
        for starter in STARTERS:
            if starter.key in known or starter.name in taken:
                existing += 1
                continue
            trigger_tag = tags[names[starter.tag_role]] if starter.trigger in (
                JourneyTrigger.TAG_ADDED, JourneyTrigger.TAG_REMOVED) else None
            journey = Journey.objects.create(
                name=starter.name, description=starter.description, trigger=starter.trigger,
                trigger_tag=trigger_tag, audience=starter.audience.format(**names),
                starter_key=starter.key, active=False, **starter.exits)
            for position, step in enumerate(starter.steps, start=1):
                template = None
                if step.template:
                    name, body = TEMPLATES[step.template]
                    template = template_create(name=name, language=language, body=body,
                                               variables=SALUTATION,
                                               status=TemplateStatus.PENDING)
                JourneyStep.objects.create(journey=journey, position=position, kind=step.kind,
                                           template=template, **step.options)
            created += 1
    return created, existing
