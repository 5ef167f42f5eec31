"""Issue #15, “real exports in, as they come”: shop and chat exports read with no editing.

The sample files in ``formats/`` are written from each platform's documented columns
(docs/imports.md says which were verified against the platform's own code or docs).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from crm.models import ConsentStatus, Contact
from tagging.imports.models import ConsentBasis, UnknownTags
from tagging.imports.services import import_analyse, import_create

pytestmark = pytest.mark.django_db

FORMATS = Path(__file__).parent / "formats"


def contact(phone: str) -> Contact:
    return Contact.objects.get(phone=phone)


def tags(phone: str) -> set[str]:
    return set(contact(phone).tags.values_list("name", flat=True))


def local(*args) -> datetime:
    return timezone.make_aware(datetime(*args))


def mapping_of(name: str, **options) -> dict[str, dict]:
    job = import_create(path=FORMATS / name, consent_basis=ConsentBasis.UNKNOWN, **options)
    import_analyse(job=job)
    return {c["header"]: c for c in job.preview["mapping"]}


def test_shopify_export_reads_phones_by_rank_and_the_rows_own_country(vocabulary, run_import):
    job = run_import(FORMATS / "shopify_customers_export.csv",
                     unknown_tags=UnknownTags.SKIP)

    assert (job.rows, job.created, job.failed) == (4, 4, 0), job.errors
    # Phone first; Ben has none, so his Default Address Phone, read as a German number.
    assert contact("+4915123000001").first_name == "Anna"
    assert contact("+4915123000002").last_name == "Müller"
    # Mei's national number is read in her own country (HK), not the file's (DE).
    assert contact("+85291234567").city == "Hong Kong"
    anna = contact("+4915123000001")
    assert (anna.city, anna.purchase_count, anna.total_spent) == ("Berlin", 5, Decimal("349.90"))
    assert anna.attributes == {"email": "anna.schmidt@example.com"}
    assert anna.notes == "Stammkundin, bestellt gern\nper Telefon"
    assert tags("+4915123000001") == {"VIP"}  # “Newsletter” does not exist: skipped
    assert job.report["warnings"] == {"unknown_tag_skipped": 1}
    assert job.report["skipped_tags"] == {"Newsletter": 1}
    assert any("without their unknown tags" in n or "without its unknown tags" in n
               for n in job.report["notes"])


def test_shopify_unknown_tag_fails_the_row_by_default(vocabulary, run_import):
    job = run_import(FORMATS / "shopify_customers_export.csv")

    assert (job.created, job.errors) == (3, {"unknown_tag": 1})
    assert not Contact.objects.filter(phone="+4915123000001").exists()


def test_shopify_consent_columns_are_honoured_per_row(vocabulary, run_import):
    run_import(FORMATS / "shopify_customers_export.csv", unknown_tags=UnknownTags.SKIP,
               consent_basis=ConsentBasis.OPTED_IN, consent_source="shop checkout")

    status = dict(Contact.objects.values_list("phone", "consent_status"))
    assert status == {
        "+4915123000001": "opted_in",  # SMS yes, e-mail yes: nothing says no
        "+4915123000002": "unknown",   # Accepts SMS Marketing = no: never opted in
        "+85291234567": "unknown",     # e-mail no: a no in any channel keeps it out
        "+4915123000004": "unknown",   # SMS no
    }
    assert contact("+4915123000001").consent_source == "shop checkout"


def test_shopify_sms_consent_counts_for_whatsapp_only_when_mapped(vocabulary, run_import):
    job = run_import(FORMATS / "shopify_customers_export.csv", unknown_tags=UnknownTags.SKIP,
                     consent_basis=ConsentBasis.UNKNOWN, consent_source="",
                     consent_for_whatsapp=["Accepts SMS Marketing"])

    status = dict(Contact.objects.values_list("phone", "consent_status"))
    assert status == {"+4915123000001": "opted_in", "+4915123000002": "unknown",
                      "+85291234567": "opted_in", "+4915123000004": "unknown"}
    assert contact("+85291234567").consent_source == (
        f"“Accepts SMS Marketing” column of import #{job.pk}")


def test_shopify_legacy_export(vocabulary, run_import):
    job = run_import(FORMATS / "shopify_customers_legacy.csv")

    assert (job.created, job.failed) == (2, 0), job.errors
    karl = contact("+436641234567")  # national number, Country Code AT
    assert (karl.city, karl.purchase_count, tags(karl.phone)) == ("Wien", 2, {"VIP"})
    # “Accepts Marketing” is e-mail marketing: Lena's no keeps her from being opted in.
    assert contact("+4915123000011").consent_status == ConsentStatus.UNKNOWN
    assert karl.consent_status == ConsentStatus.OPTED_IN


def test_woocommerce_export(vocabulary, run_import):
    job = run_import(FORMATS / "woocommerce_customers.csv")

    assert (job.created, job.failed) == (3, 0), job.errors
    jonas = contact("+491701234567")
    assert (jonas.first_name, jonas.city, jonas.purchase_count, jonas.total_spent) == (
        "Jonas", "Leipzig", 7, Decimal("612.40"))
    assert jonas.joined_at == local(2019, 4, 12, 9, 15)
    assert jonas.attributes == {"email": "jonas@example.com"}
    sophie = contact("+436647654321")  # billing phone, billing country AT
    assert (sophie.first_name, sophie.last_name) == ("Sophie", "Gruber")  # billing names
    wei = contact("+8613800138000")  # no billing phone: the shipping phone, country CN
    assert wei.city == "Shanghai"


def test_wati_export(vocabulary, run_import):
    job = run_import(FORMATS / "wati_contacts_export.csv", consent_basis=ConsentBasis.UNKNOWN,
                     consent_source="")

    assert (job.created, job.failed) == (4, 0), job.errors
    anna = contact("+4915123000021")  # a WhatsApp id: country code without “+”
    assert (anna.first_name, anna.last_name, anna.city) == ("Anna", "Schmidt", "Berlin")
    assert anna.consent_status == ConsentStatus.OPTED_IN  # Opted In / Allow Broadcast TRUE
    assert anna.joined_at == local(2022, 8, 15, 10, 12)
    chen = contact("+85291234567")
    assert (chen.first_name, chen.last_name) == ("陈美", "")
    tom = contact("+4915123000022")  # national number with Country Code +49
    assert tom.consent_status == ConsentStatus.UNKNOWN  # FALSE: not opted in
    assert tags(tom.phone) == {"Interesse-Sport"}
    assert contact("+4915123000023").consent_status == ConsentStatus.OPTED_OUT


def test_chatwoot_export(vocabulary, run_import):
    job = run_import(FORMATS / "chatwoot_contacts_export.csv")

    assert (job.created, job.failed) == (3, 0), job.errors
    lea = contact("+4915123000031")
    assert (lea.first_name, lea.last_name) == ("Lea", "Vogel")
    assert lea.joined_at == datetime(2020, 5, 5, 14, 30, tzinfo=UTC)
    assert lea.attributes == {"email": "lea@example.com"}
    assert lea.consent_status == ConsentStatus.OPTED_IN
    # A contact blocked in Chatwoot is never opted in, whatever the file's consent basis.
    assert contact("+4915123000033").consent_status == ConsentStatus.UNKNOWN


@pytest.mark.parametrize("name, expected", [
    ("shopify_customers_export.csv", {
        "Phone": ("phone", 0), "Default Address Phone": ("phone", 1),
        "Default Address Country Code": ("country", 0), "Default Address City": ("city", 1),
        "Email": ("email", 0), "Total Spent": ("total_spent", 0),
        "Total Orders": ("purchase_count", 0), "Tags": ("tags", 0), "Note": ("notes", 0),
        "Accepts SMS Marketing": ("consent", 0), "Tax Exempt": ("unused", 0)}),
    ("woocommerce_customers.csv", {
        "billing_phone": ("phone", 1), "shipping_phone": ("phone", 2),
        "billing_country": ("country", 0), "date_created": ("joined", 0),
        "billing_first_name": ("first_name", 1), "orders_count": ("purchase_count", 0),
        "id": ("ignored", 0)}),
    ("wati_contacts_export.csv", {
        "Name": ("name", 0), "Phone": ("phone", 0), "Country Code": ("country", 0),
        "Created Date": ("joined", 0), "Opted In": ("consent", 0), "Tags": ("tags", 0),
        "Lieblingsprodukt": ("unused", 0)}),
    ("chatwoot_contacts_export.csv", {
        "name": ("name", 0), "phone_number": ("phone", 0), "created_at": ("joined", 1),
        "country_code": ("country", 0), "blocked": ("consent", 0)}),
])
def test_the_preview_shows_what_each_column_was_recognised_as(vocabulary, name, expected):
    mapping = mapping_of(name)

    assert {h: (mapping[h]["target"], mapping[h].get("rank", 0)) for h in expected} == expected
