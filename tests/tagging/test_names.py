import pytest
from django.db import IntegrityError, transaction

from tagging.models import Tag
from tagging.names import name_key


@pytest.mark.parametrize("variant", ["Bestellt", " bestellt", "BESTELLT", "Be-stellt",
                                     "be stellt", "Bestellt\u00a0"])
def test_names_that_differ_in_case_space_or_dashes_share_a_key(variant):
    assert name_key(variant) == name_key("Bestellt")


def test_accents_fold_but_different_words_do_not():
    assert name_key("Kaufphase-Stöbern") == name_key("kaufphase stobern")
    assert name_key("Bestellt") != name_key("Bezahlt")


@pytest.mark.django_db
def test_a_second_tag_with_a_folded_twin_name_is_refused(make_tag):
    make_tag(name="Bestellt")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_tag(name=" BESTELLT")
    assert Tag.objects.count() == 1
