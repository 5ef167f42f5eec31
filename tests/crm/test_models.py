import pytest
from django.core.exceptions import ValidationError

from crm.models import Contact
from crm.selectors import contacts_search


@pytest.mark.django_db
def test_full_clean_normalises_phone_and_derives_country():
    contact = Contact(phone="0049 170 123 4567")
    contact.full_clean()
    assert (contact.phone, contact.country) == ("+491701234567", "DE")


@pytest.mark.django_db
def test_same_number_in_another_writing_is_a_duplicate(make_contact):
    make_contact(phone="+491701234567")
    contact = Contact(phone="0170 1234567")
    with pytest.raises(ValidationError) as error:
        contact.full_clean()
    assert "phone" in error.value.message_dict


@pytest.mark.django_db
def test_search_finds_a_number_in_any_writing_and_names_by_prefix(make_contact):
    anna = make_contact(phone="+491701234567", first_name="Anna", last_name="Chen")
    make_contact(first_name="Bert", last_name="Annas")
    assert list(contacts_search("0170 / 123 45 67")) == [anna]
    assert list(contacts_search("+49-170-1234567")) == [anna]
    assert {c.first_name for c in contacts_search("ann")} == {"Anna", "Bert"}
    assert list(contacts_search("anna chen")) == [anna]
