"""The link and QR code, the command, the admin pages (downloads, printable page, history)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from campaigns.entrypoints.models import Arrival, EntryPoint
from campaigns.entrypoints.selectors import entry_point_history
from campaigns.entrypoints.services import entry_point_link, qr_png, qr_svg
from crm.events import EventIn, events_record


def test_link_is_wa_me_with_the_business_number_and_a_text_containing_the_code(
        make_entry_point):
    entry_point = make_entry_point(code="MESSE26", text="Hallo Tagwerk-Team, ich war am Stand!")
    url = urlparse(entry_point_link(entry_point))
    assert (url.scheme, url.netloc, url.path) == ("https", "wa.me", "/49301234567")
    assert parse_qs(url.query)["text"] == ["Hallo Tagwerk-Team, ich war am Stand! MESSE26"]


def test_text_that_has_the_code_already_is_kept(make_entry_point):
    entry_point = make_entry_point(code="MESSE26", text="Code messe26 bitte")
    assert parse_qs(urlparse(entry_point_link(entry_point)).query)["text"] == [
        "Code messe26 bitte"]


def test_qr_code_as_png_and_svg_encodes_the_link(make_entry_point):
    import segno

    entry_point = make_entry_point(code="MESSE26")
    png, svg = qr_png(entry_point), qr_svg(entry_point)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "<svg" in svg and entry_point.name in svg
    # The same symbol as segno makes for the link itself.
    expected = segno.make(entry_point_link(entry_point), error="m")
    out = io.BytesIO()
    expected.save(out, kind="png", scale=10, border=4)
    assert out.getvalue() == png


def test_without_a_business_number_the_error_says_which_setting(make_entry_point, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.WHATSAPP_DISPLAY_PHONE_NUMBER = ""
    with pytest.raises(ImproperlyConfigured, match="WHATSAPP_DISPLAY_PHONE_NUMBER"):
        entry_point_link(make_entry_point())


def test_create_entry_point_command_prints_the_link_last_and_writes_the_png(
        db, make_tag, tmp_path):
    make_tag(name="Quelle-QR-Code")
    make_tag(name="Messe Köln 2026")
    out = io.StringIO()
    png = tmp_path / "messe.png"
    call_command("create_entry_point", "--name", "Messe Köln 2026", "--tag", "Quelle-QR-Code",
                 "--tag", "messe köln 2026", "--code", "messe26", "--text", "Hallo!",
                 "--consent", "--consent-text", "Angebote per WhatsApp.", "--png", str(png),
                 stdout=out)
    entry_point = EntryPoint.objects.get()
    assert out.getvalue().strip().splitlines()[-1] == entry_point_link(entry_point)
    assert entry_point.code == "MESSE26" and entry_point.consent
    assert {t.name for t in entry_point.tags.all()} == {"Quelle-QR-Code", "Messe Köln 2026"}
    assert png.read_bytes().startswith(b"\x89PNG")


def test_create_entry_point_command_refuses_unknown_tags_and_creates_nothing(db):
    with pytest.raises(CommandError, match=r"Unknown tag.*Nope"):
        call_command("create_entry_point", "--name", "X", "--tag", "Nope")
    assert not EntryPoint.objects.exists()


def test_create_entry_point_command_without_business_number_creates_nothing(db, settings):
    settings.WHATSAPP_DISPLAY_PHONE_NUMBER = ""
    with pytest.raises(CommandError, match="WHATSAPP_DISPLAY_PHONE_NUMBER"):
        call_command("create_entry_point", "--name", "X")
    assert not EntryPoint.objects.exists()


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def test_admin_downloads_and_printable_page(admin_client, make_entry_point):
    entry_point = make_entry_point(name="Paketkarte", code="PAKET1", consent=True,
                                   consent_text="Mit deiner Nachricht stimmst du zu.")
    base = f"/admin/entrypoints/entrypoint/{entry_point.pk}"
    page = admin_client.get(f"{base}/change/").content.decode()
    assert 'id="entry-point-qr"' in page and "https://wa.me/49301234567?text=" in page
    png = admin_client.get(f"{base}/qr.png")
    assert png["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert 'filename="qr-paketkarte.png"' in png["Content-Disposition"]
    svg = admin_client.get(f"{base}/qr.svg")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    for size in ("a4", "a6"):
        sheet = admin_client.get(f"{base}/print/?size={size}").content.decode()
        assert f'id="printable-{size}"' in sheet
        assert "Paketkarte" in sheet and "Mit deiner Nachricht stimmst du zu." in sheet
        assert "<svg" in sheet and f"size: {size.upper()}" in sheet


def test_admin_creates_an_entry_point_with_a_made_up_code(admin_client, make_tag):
    tag = make_tag(name="Quelle-QR-Code")
    response = admin_client.post("/admin/entrypoints/entrypoint/add/", {
        "name": "Newsletter", "code": "", "kind": "code", "tags": [tag.pk], "text": "",
        "consent": "on", "consent_text": "", "active": "on",
        "ad_sources-TOTAL_FORMS": "0", "ad_sources-INITIAL_FORMS": "0"})
    assert response.status_code == 200  # refused: consent without its text
    assert "consent text" in response.content.decode()
    response = admin_client.post("/admin/entrypoints/entrypoint/add/", {
        "name": "Newsletter", "code": "", "kind": "code", "tags": [tag.pk], "text": "",
        "consent_text": "", "active": "on",
        "ad_sources-TOTAL_FORMS": "1", "ad_sources-INITIAL_FORMS": "0",
        "ad_sources-0-source_id": "120210001", "ad_sources-0-note": "Herbst"})
    assert response.status_code == 302
    entry_point = EntryPoint.objects.get()
    assert len(entry_point.code) == 6
    assert entry_point.ad_sources.get().source_id == "120210001"


def test_history_counts_chats_new_contacts_consent_and_later_purchases(
        admin_client, make_entry_point, make_contact):
    entry_point = make_entry_point(code="MESSE26")
    now = timezone.now()
    buyer, browser = make_contact(), make_contact()
    Arrival.objects.create(entry_point=entry_point, contact=buyer, message_id="m1",
                           arrived_at=now - timedelta(days=3), new_contact=True, consented=True)
    Arrival.objects.create(entry_point=entry_point, contact=browser, message_id="m2",
                           arrived_at=now - timedelta(days=2))
    events_record(events=[
        # Bought before arriving: not this entry point's doing.
        EventIn(kind="purchase", contact_id=buyer.pk, occurred_at=now - timedelta(days=5),
                amount=Decimal("10.00"), source_id="p0"),
        EventIn(kind="purchase", contact_id=buyer.pk, occurred_at=now - timedelta(days=1),
                amount=Decimal("49.90"), source_id="p1"),
        EventIn(kind="purchase", contact_id=make_contact().pk, occurred_at=now,
                amount=Decimal("99.00"), source_id="p2")])

    periods = entry_point_history(entry_point, unit="day", periods=30)
    assert sum(p.chats for p in periods) == 2
    assert sum(p.new_contacts for p in periods) == 1
    assert sum(p.consented for p in periods) == 1
    assert sum(p.purchases for p in periods) == 1
    assert sum(p.revenue for p in periods) == Decimal("49.90")

    page = admin_client.get(f"/admin/entrypoints/entrypoint/{entry_point.pk}/history/?unit=day")
    html = page.content.decode()
    assert 'id="entry-point-chart"' in html and "<svg" in html
    assert '<th data-key="purchases">1</th>' in html and '<th data-key="revenue">49.90</th>' in html
    export = admin_client.get(
        f"/admin/entrypoints/entrypoint/{entry_point.pk}/history/?unit=week&format=csv")
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert len(rows) == 12
    assert sum(int(r["chats_started"]) for r in rows) == 2
    assert sum(Decimal(r["revenue"]) for r in rows) == Decimal("49.90")
    listing = admin_client.get("/admin/entrypoints/entrypoint/").content.decode()
    assert "MESSE26" in listing
