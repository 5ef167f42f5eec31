"""Per-row consent (issue #15): honoured, never upgraded, decided by the one consent rule.

A row's consent columns say yes, no, or nothing (missing); WhatsApp's own columns decide;
another channel's yes counts for WhatsApp only when the importer maps it so; a no in any
consent column keeps the row from being opted in, whatever the file's consent basis.
"""

from __future__ import annotations

import pytest

from crm.models import ConsentStatus, Contact
from tagging.imports.models import ConsentBasis
from tagging.imports.rules import NO, OPT_OUT, YES, consent_value, consent_verdict
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

IN, OUT, UNKNOWN = ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT, ConsentStatus.UNKNOWN


def status() -> dict[str, str]:
    return dict(Contact.objects.values_list("phone", "consent_status"))


def opted_in_basis(run_import, content, **options):
    return run_import(content, consent_basis=ConsentBasis.OPTED_IN,
                      consent_source="Messe 2026", **options)


def unknown_basis(run_import, content, **options):
    return run_import(content, consent_basis=ConsentBasis.UNKNOWN, consent_source="",
                      **options)


# --- no --------------------------------------------------------------------------------


def test_no_is_never_stored_as_opted_in_whatever_the_basis(vocabulary, run_import):
    opted_in_basis(run_import, "phone,Accepts SMS Marketing,WhatsApp Opt-in\n"
                               "+4915123000001,no,\n+4915123000002,,no\n+4915123000003,,\n")

    assert status() == {"+4915123000001": UNKNOWN, "+4915123000002": UNKNOWN,
                        "+4915123000003": IN}


def test_no_does_not_withdraw_consent_given_before(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", consent_status=IN)
    ContactFactory(phone="+4915123000002", consent_status=UNKNOWN)

    opted_in_basis(run_import, "phone,Accepts SMS Marketing\n+4915123000001,no\n"
                               "+4915123000002,no\n")

    assert status() == {"+4915123000001": IN, "+4915123000002": UNKNOWN}


def test_an_explicit_opt_out_is_recorded_and_undo_never_lifts_it(vocabulary, run_import):
    from tagging.imports.services import import_undo

    ContactFactory(phone="+4915123000001", consent_status=IN)
    job = opted_in_basis(run_import, "phone,consent_status\n+4915123000001,opted_out\n"
                                     "+4915123000002,opted_out\n")

    assert status() == {"+4915123000001": OUT, "+4915123000002": OUT}
    assert Contact.objects.get(phone="+4915123000002").consent_source == (
        f"“consent_status” column of import #{job.pk}")
    import_undo(job=job)
    assert status() == {"+4915123000001": OUT}  # only the person lifts an opt-out


# --- yes -------------------------------------------------------------------------------


def test_whatsapp_yes_opts_in_even_when_the_file_basis_is_unknown(vocabulary, run_import):
    job = unknown_basis(run_import, "phone,WhatsApp Opt-in\n+4915123000001,yes\n")

    contact = Contact.objects.get()
    assert (contact.consent_status, contact.consent_source) == (
        IN, f"“WhatsApp Opt-in” column of import #{job.pk}")


def test_yes_never_lifts_an_opt_out_or_a_block(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", consent_status=OUT)
    ContactFactory(phone="+4915123000002", consent_status=UNKNOWN, is_blocked=True)

    opted_in_basis(run_import, "phone,WhatsApp Opt-in\n+4915123000001,yes\n"
                               "+4915123000002,yes\n")

    assert status() == {"+4915123000001": OUT, "+4915123000002": UNKNOWN}


# --- missing ---------------------------------------------------------------------------


@pytest.mark.parametrize("basis, expected", [(ConsentBasis.OPTED_IN, IN),
                                             (ConsentBasis.UNKNOWN, UNKNOWN)])
def test_missing_consent_follows_the_file_basis(vocabulary, run_import, basis, expected):
    run_import("phone,Accepts SMS Marketing,consent_status\n+4915123000001,,unknown\n",
               consent_basis=basis, consent_source="Messe 2026")

    assert status() == {"+4915123000001": expected}


# --- another channel's yes -------------------------------------------------------------


def test_unmapped_other_channel_yes_counts_for_nothing(vocabulary, run_import):
    unknown_basis(run_import, "phone,Accepts SMS Marketing,Accepts Email Marketing\n"
                              "+4915123000001,yes,yes\n")

    assert status() == {"+4915123000001": UNKNOWN}


def test_unmapped_other_channel_yes_leaves_an_opted_in_basis_as_it_is(vocabulary, run_import):
    opted_in_basis(run_import, "phone,Accepts SMS Marketing\n+4915123000001,yes\n")

    assert status() == {"+4915123000001": IN}


def test_other_channel_yes_counts_when_the_importer_maps_it(vocabulary, run_import):
    unknown_basis(run_import, "phone,Accepts SMS Marketing,Accepts Email Marketing\n"
                              "+4915123000001,yes,no\n+4915123000002,no,yes\n",
                  consent_for_whatsapp=["Accepts SMS Marketing"])

    # The mapped column decides; the e-mail no does not outvote a WhatsApp-mapped yes.
    assert status() == {"+4915123000001": IN, "+4915123000002": UNKNOWN}


def test_a_consent_value_that_is_neither_yes_nor_no_is_a_no_with_a_warning(vocabulary,
                                                                          run_import):
    job = opted_in_basis(run_import, "phone,WhatsApp Opt-in\n+4915123000001,vielleicht\n")

    assert status() == {"+4915123000001": UNKNOWN}
    assert job.report["warnings"] == {"consent_unclear": 1}
    assert job.report["warning_rows"] == [
        [2, "WhatsApp Opt-in: “vielleicht” is neither yes nor no; the row is not opted in."]]


# --- the rule itself -------------------------------------------------------------------


@pytest.mark.parametrize("cell, channel, expected", [
    ("yes", "sms", YES), ("TRUE", "whatsapp", YES), ("Ja", "email", YES), ("是", "sms", YES),
    ("no", "sms", NO), ("FALSE", "whatsapp", NO), ("pending", "email", NO),
    ("opted_out", "whatsapp", OPT_OUT), ("unsubscribed", "email", NO),
    ("", "sms", None), ("unknown", "whatsapp", None), ("true", "blocked", NO),
    ("false", "blocked", None), ("maybe", "sms", ""),
])
def test_consent_values(cell, channel, expected):
    assert consent_value(cell, channel) == expected


@pytest.mark.parametrize("said, expected", [
    ([], None),
    ([("other", YES, "SMS")], None),
    ([("other", NO, "SMS")], NO),
    ([("other", YES, "SMS"), ("other", NO, "Mail")], NO),
    ([("mapped", YES, "SMS"), ("other", NO, "Mail")], YES),
    ([("mapped", YES, "SMS"), ("mapped", NO, "SMS2")], NO),
    ([("whatsapp", YES, "WA"), ("mapped", NO, "SMS")], YES),
    ([("whatsapp", YES, "WA"), ("whatsapp", OPT_OUT, "Status")], OPT_OUT),
])
def test_consent_verdict_precedence(said, expected):
    assert consent_verdict(said)[0] == expected
