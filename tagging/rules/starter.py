"""The starter rules: PRODUCT.md §6, in the demo's vocabulary (German or Chinese).

Seven rules of the source documents. A rule has one trigger and one audience,
so rule 3 (purchase / cart abandoned) and rule 5 (the lifecycle) are written
as several rows, numbered 3a–3b and 5a–5e. Loading is idempotent by
``starter_key``: a starter rule that exists (even edited or renamed) is left
as it is, so people can tune them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from tagging.models import Dimension
from tagging.names import name_key
from tagging.rules.models import IntervalUnit, Rule, RuleTrigger
from tagging.rules.services import rule_save
from tagging.rules.starter_vocabulary import (
    PURCHASE_TAG_TEMPLATE,
    PURCHASES_DIMENSION,
    role_names,
    vocabulary,
)
from tagging.vocabulary import vocabulary_ensure

DAILY = {"schedule_crontab": "10 3 * * *"}  # 03:10, after midnight's birthdays and imports


@dataclass(frozen=True)
class Starter:
    """A starter rule. ``add``/``remove`` name tags by role, and ``{role}`` in ``segment``
    stands for a tag or dimension name, so one list serves every demo language."""

    key: str
    name: str
    description: str
    segment: str = ""
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    priority: int = 100
    options: dict = field(default_factory=dict)
    name_zh: str = ""


STARTERS = [
    Starter("starter-1", "1 Hochwertiger Kunde: mehr als 3 Käufe",
            "More than 3 purchases → “Hochwertiger Kunde”.",
            "purchases > 3", add=("high_value",), name_zh="1 高价值客户：购买超过3次",
            options={"schedule_every": 1, "schedule_unit": IntervalUnit.HOURS}),
    Starter("starter-2", "2 Seit 14 Tagen nichts gelesen",
            "No message read for more than 14 days → remove “Hohe Aktivität”, add "
            "“Beobachtung notwendig”. Customers who joined less than 14 days ago are not "
            "judged yet.",
            "NOT last_read within 14d AND NOT joined within 14d",
            add=("needs_watching",), remove=("high_activity",), options=DAILY,
            name_zh="2 14天未读消息"),
    Starter("starter-3a", "3a Kauf: Warenkorbabbruch weg, Kauf-Tag dazu",
            "On a purchase → remove “Warenkorbabbruch”, add “Gekauft <Monat> <Produkt>” "
            "(created in “Käufe” on first use). Priority over 3b: a purchase in the same "
            "batch as a cart abandonment wins.",
            remove=("cart_abandoned",), priority=110,
            options={"trigger": RuleTrigger.EVENT, "event_kind": "purchase"},
            name_zh="3a 购买：移除加购未付款，添加购买标签"),
    Starter("starter-3b", "3b Warenkorbabbruch",
            "On a cart abandoned event → “Warenkorbabbruch”.",
            add=("cart_abandoned",),
            options={"trigger": RuleTrigger.EVENT, "event_kind": "cart_abandoned"},
            name_zh="3b 加购未付款"),
    Starter("starter-4", "4 Seit 60 Tagen nichts gelesen: Drohender Abwanderer",
            "No (marketing) message read for more than 60 days → remove the activity tags that "
            "mean active (“Hohe Aktivität”, “Hohes Potenzial - Nachverfolgung erforderlich”), "
            "add “Drohender Abwanderer”, which starts the win-back.",
            "NOT last_read within 60d AND NOT joined within 60d",
            add=("churn_risk",), remove=("high_activity", "high_potential"),
            options=DAILY, name_zh="4 60天未读消息：流失风险"),
    Starter("starter-5a", "5a Lebenszyklus: Neukunde (Tag 0–30)",
            "Days 0–30 after joining → “Neukunde” (unless the first purchase is over 60 days "
            "old, see 5e).",
            "joined within 30d AND NOT (purchases >= 1 AND NOT first_purchase within 60d)",
            add=("new_customer",), priority=90, options=DAILY,
            name_zh="5a 生命周期：新客户（0–30天）"),
    Starter("starter-5b", "5b Lebenszyklus: Wachstum, hohe Frequenz (Tag 31–90)",
            "Days 31–90 with at least one read message per week on average (last 4 weeks) → "
            "“Wachstum-Hohe Frequenz”.",
            "NOT joined within 30d AND joined within 90d AND reads_per_week >= 1",
            add=("growth_high",), priority=90, options=DAILY,
            name_zh="5b 生命周期：成长期高频（31–90天）"),
    Starter("starter-5c", "5c Lebenszyklus: Wachstum, niedrige Frequenz (Tag 31–90)",
            "Days 31–90 with less than one read message per week → “Wachstum-Niedrige "
            "Frequenz”.",
            "NOT joined within 30d AND joined within 90d AND reads_per_week < 1",
            add=("growth_low",), priority=90, options=DAILY,
            name_zh="5c 生命周期：成长期低频（31–90天）"),
    Starter("starter-5d", "5d Lebenszyklus: nach 90 Tagen ohne zweiten Kauf",
            "Past 90 days in the lifecycle without a second purchase → remove “Neukunde”, add "
            "“Drohender Abwanderer”.",
            'NOT joined within 90d AND purchases < 2 AND "{lifecycle}/*"',
            add=("churn_risk",), remove=("new_customer",), priority=95, options=DAILY,
            name_zh="5d 生命周期：90天后无第二次购买"),
    Starter("starter-5e", "5e Neukunde endet 60 Tage nach dem ersten Kauf",
            "“Neukunde” never survives 60 days after the first purchase.",
            '"{new_customer}" AND purchases >= 1 AND NOT first_purchase within 60d',
            remove=("new_customer",), priority=95, options=DAILY,
            name_zh="5e 首次购买60天后不再是新客户"),
    Starter("starter-6", "6 Schlafende VIPs (vierteljährlich)",
            "Quarterly: “VIP” without interaction for more than 180 days → remove “VIP”, add "
            "“Historischer Bestand - Reaktivierung erforderlich”.",
            '"{vip}" AND NOT last_interaction within 180d',
            add=("reactivation",), remove=("vip",),
            options={"schedule_crontab": "0 4 1 1,4,7,10 *"}, name_zh="6 沉睡的VIP（每季度）"),
    Starter("starter-7", "7 Geburtstag bald",
            "Birthday today or within the next 7 days → “Geburtstag bald”; removed again "
            "after the birthday.",
            "birthday_in <= 7", add=("birthday_soon",),
            options={"schedule_crontab": "5 0 * * *", "sync": True}, name_zh="7 生日将至"),
]


def _purchases_dimension(language: str) -> Dimension:
    name, colour, description = PURCHASES_DIMENSION[language]
    dimension = Dimension.objects.filter(name_key=name_key(name)).first()
    if dimension is None:
        dimension = Dimension(name=name, colour=colour, description=description, order=90)
        dimension.save()
    return dimension


def rules_load_starter(*, language: str = "de") -> tuple[int, int]:
    """Create the starter rules that are missing, in ``language``'s vocabulary; return
    (created, already there)."""
    created = existing = 0
    names = role_names(language)
    with transaction.atomic():
        tags = vocabulary_ensure(vocabulary(language))
        dimension = _purchases_dimension(language)
        known = set(Rule.objects.exclude(starter_key="").values_list("starter_key", flat=True))
        rule_names = set(Rule.objects.values_list("name", flat=True))
        for starter in STARTERS:
            name = starter.name_zh if language == "zh-hans" and starter.name_zh else starter.name
            if starter.key in known or name in rule_names:
                existing += 1
                continue
            options = dict(starter.options)
            if starter.key == "starter-3a":
                options["add_template"] = PURCHASE_TAG_TEMPLATE[language]
                options["template_dimension"] = dimension
            rule = Rule(name=name, description=starter.description,
                        segment=starter.segment.format(**names), priority=starter.priority,
                        starter_key=starter.key, **options)
            rule_save(rule=rule, add_tags=[tags[names[r]] for r in starter.add],
                      remove_tags=[tags[names[r]] for r in starter.remove])
            created += 1
    return created, existing
