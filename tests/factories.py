import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from crm.models import ConsentStatus, Contact
from tagging.models import Dimension, Tag


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests-123")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    # Valid German mobile numbers: +49 151 2345 6xxx.
    phone = factory.Sequence(lambda n: f"+4915123{n:06d}")
    country = "DE"
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    consent_status = ConsentStatus.OPTED_IN
    # A contact made in a test has been a customer since it was created, unless told.
    created_at = factory.LazyFunction(timezone.now)
    joined_at = factory.SelfAttribute("created_at")


class DimensionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dimension

    name = factory.Sequence(lambda n: f"Dimension {n}")
    colour = "#336699"


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    dimension = factory.SubFactory(DimensionFactory)
    name = factory.Sequence(lambda n: f"Tag {n}")
