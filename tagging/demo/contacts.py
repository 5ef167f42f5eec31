"""Demo data: a plausible customer base with the vocabulary of the source documents.

Deterministic for a given seed and idempotent: numbers, facts and tags are
drawn from ``random.Random(seed)``; contacts are created through
``crm.services.contacts_insert`` leaving numbers already stored as they are, and
tags through ``tags_change``, so a second run finds everything in place and adds
nothing.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import phonenumbers
from django.utils import timezone

from crm.models import ConsentStatus, Contact, Gender
from crm.selectors import contact_ids_by_phone
from crm.services import contacts_insert
from tagging.models import Source
from tagging.rules.starter_vocabulary import role_names, vocabulary
from tagging.services import tags_change
from tagging.vocabulary import vocabulary_ensure

# region, share of contacts, languages, name pool
REGIONS = [
    ("DE", 40, "de", "de"), ("HK", 18, "zh", "zh"), ("CN", 10, "zh", "zh"),
    ("AT", 8, "de", "de"), ("CH", 7, "de", "de"), ("GB", 6, "en", "en"),
    ("US", 6, "en", "en"), ("SG", 5, "en", "zh"),
]
NAMES = {
    "de": (["Anna", "Lena", "Sophie", "Marie", "Laura", "Julia", "Lukas", "Jonas", "Felix",
            "Paul", "Leon", "Max", "Katrin", "Sabine", "Thomas", "Stefan"],
           ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
            "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf"]),
    "zh": (["Mei", "Xiu", "Ling", "Hui", "Yan", "Jing", "Wei", "Jun", "Hao", "Ming", "Lei", "Tao"],
           ["Chen", "Wong", "Li", "Zhang", "Lau", "Cheung", "Ho", "Ng", "Leung", "Lam", "Tang"]),
    "en": (["Emma", "Olivia", "Amelia", "Grace", "Chloe", "James", "Oliver", "Jack", "Harry",
            "Daniel", "Ethan", "Mia"],
           ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Walker", "Clark",
            "Lewis", "Young"]),
}
SALUTATIONS = {"de": ("Frau", "Herr"), "zh": ("Ms", "Mr"), "en": ("Ms", "Mr")}
CITIES = {"DE": ["Berlin", "Hamburg", "München", "Köln", "Frankfurt"], "HK": ["Hong Kong"],
          "CN": ["Shanghai", "Shenzhen", "Guangzhou"], "AT": ["Wien", "Graz"],
          "CH": ["Zürich", "Basel"], "GB": ["London", "Manchester"],
          "US": ["New York", "San Francisco"], "SG": ["Singapore"]}


@dataclass(frozen=True)
class SeedResult:
    contacts_created: int
    contacts_total: int
    tags_added: int


def _phone(rng: random.Random, region: str) -> str:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    national = str(example.national_number)
    keep = max(3, len(national) - 6)
    while True:
        digits = national[:keep] + "".join(rng.choice("0123456789")
                                           for _ in range(len(national) - keep))
        number = phonenumbers.parse(f"+{example.country_code}{digits}")
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _contact(rng: random.Random, phones: set[str], now) -> tuple[dict, dict]:
    region, _share, language, pool = rng.choices(REGIONS, weights=[r[1] for r in REGIONS])[0]
    phone = _phone(rng, region)
    while phone in phones:
        phone = _phone(rng, region)
    phones.add(phone)
    female = rng.random() < 0.62
    first = rng.choice(NAMES[pool][0])
    last = rng.choice(NAMES[pool][1])
    created = now - timedelta(days=rng.randint(0, 730), minutes=rng.randint(0, 1439))
    purchases = 0 if rng.random() < 0.35 else min(int(rng.expovariate(0.45)) + 1, 40)
    spent = Decimal(sum(rng.randint(15, 180) for _ in range(purchases)))
    age_days = (now - created).days
    first_purchase = last_purchase = None
    if purchases:
        first_purchase = created + timedelta(days=rng.randint(0, max(age_days, 0)))
        last_purchase = first_purchase + timedelta(days=rng.randint(0, (now - first_purchase).days))
    interacted = None if rng.random() < 0.08 else now - timedelta(days=min(
        int(rng.expovariate(1 / 45)), age_days), hours=rng.randint(0, 23))
    read = None if interacted is None or rng.random() < 0.15 else interacted - timedelta(
        days=rng.randint(0, 10))
    reply = None if interacted is None or rng.random() < 0.6 else interacted
    consent = rng.choices(
        [ConsentStatus.OPTED_IN, ConsentStatus.UNKNOWN, ConsentStatus.OPTED_OUT], [80, 12, 8]
    )[0]
    birth = (now - timedelta(days=rng.randint(18 * 365, 70 * 365))).date() \
        if rng.random() < 0.7 else None
    contact = dict(
        phone=phone, country=region, language=language, first_name=first, last_name=last,
        salutation=SALUTATIONS[pool][0 if female else 1],
        gender=Gender.FEMALE if female else Gender.MALE, birth_date=birth,
        city=rng.choice(CITIES[region]), consent_status=consent,
        consent_source="Demo: Website-Formular" if consent != ConsentStatus.UNKNOWN else "",
        consent_at=created if consent != ConsentStatus.UNKNOWN else None,
        is_blocked=rng.random() < 0.005, purchase_count=purchases, total_spent=spent,
        first_purchase_at=first_purchase, last_purchase_at=last_purchase,
        last_interaction_at=interacted, last_read_at=read, last_reply_at=reply, created_at=created,
    )
    facts = {"purchases": purchases, "spent": spent, "age_days": age_days,
             "idle_days": None if interacted is None else (now - interacted).days}
    return contact, facts


def _tags_for(rng: random.Random, facts: dict) -> list[str]:
    """The tag roles a contact with ``facts`` gets (names follow the demo language)."""
    names: list[str] = []
    purchases, idle = facts["purchases"], facts["idle_days"]
    if facts["spent"] >= 400:
        names.append("high_value")
    if purchases >= 4 and rng.random() < 0.35:
        names.append("svip" if rng.random() < 0.15 else "vip")
    for name, share in [("interest_makeup", 0.25), ("interest_sport", 0.15),
                        ("interest_food", 0.2), ("interest_travel", 0.12),
                        ("interest_product_a", 0.05)]:
        if rng.random() < share:
            names.append(name)
    if rng.random() < (0.2 if "interest_makeup" in names else 0.04):
        names.append("lipstick")
    if purchases == 0:
        stage = rng.choices(["browsing", "cart_abandoned", None], [55, 25, 20])[0]
    elif purchases == 1:
        stage = rng.choices(["ordered", "completed"], [10, 90])[0]
    else:
        stage = rng.choices(["completed", "repeat_buyer"], [55, 45])[0]
    if stage:
        names.append(stage)
    names.append(rng.choices(
        ["source_offline_event", "source_group", "source_official", "source_tiktok",
         "source_parcel_card", "source_qr"], [10, 20, 30, 20, 8, 12])[0])
    if idle is not None and idle <= 14:
        names.append("high_activity")
    elif idle is not None and idle <= 60:
        names.append("needs_watching")
    else:
        names.append("inactive")
        if rng.random() < 0.3:
            names.append("churn_risk")
    if facts["age_days"] <= 30:
        names.append("new_customer")
    elif facts["age_days"] <= 90:
        names.append("growth_high" if idle is not None and idle <= 7 else "growth_low")
    return names


def seed_demo(*, contacts: int = 10_000, seed: int = 42, language: str = "de") -> SeedResult:
    """Create ``contacts`` demo contacts with tags in ``language``'s vocabulary ("de" or
    "zh-hans"); safe to run again."""
    rng = random.Random(seed)
    now = timezone.now().replace(second=0, microsecond=0)
    tags = vocabulary_ensure(vocabulary(language))
    names = role_names(language)
    phones: set[str] = set()
    rows, plans = [], []
    for _ in range(contacts):
        contact, facts = _contact(rng, phones, now)
        rows.append(contact)
        plans.append((contact["phone"], _tags_for(rng, facts)))
    before = Contact.objects.count()
    contacts_insert(rows=rows, skip_existing=True)
    ids = contact_ids_by_phone(phones)
    by_tag: dict[str, list[int]] = defaultdict(list)
    for phone, roles in plans:
        for role in roles:
            by_tag[names[role]].append(ids[phone])
    added = 0
    for name, contact_ids in by_tag.items():
        added += tags_change(contacts=contact_ids, add=[tags[name]], source=Source.SYSTEM,
                             source_ref="demo").added
    return SeedResult(Contact.objects.count() - before, Contact.objects.count(), added)
