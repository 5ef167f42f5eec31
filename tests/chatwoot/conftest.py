import pytest
from guardian.shortcuts import assign_perm

from campaigns.chatwoot import client
from campaigns.chatwoot.models import ChatwootConnection
from tests.chatwoot.fake import ACCOUNT, TOKEN, FakeChatwoot
from tests.factories import DimensionFactory, TagFactory, UserFactory


@pytest.fixture
def chatwoot(monkeypatch):
    fake = FakeChatwoot()
    monkeypatch.setattr(client, "transport", fake.transport())
    return fake


@pytest.fixture
def vocabulary(db):
    """Two synced dimensions (one single-choice) and one that is not synced."""
    interest = DimensionFactory(name="Interest", colour="#2f9e44")
    stage = DimensionFactory(name="Purchase stage", colour="#1971c2", single_choice=True)
    source = DimensionFactory(name="Source channel", colour="#e8590c")
    return {
        "interest": interest, "stage": stage, "source": source,
        "make-up": TagFactory(dimension=interest, name="Make-up"),
        "sports": TagFactory(dimension=interest, name="Sports"),
        "browsing": TagFactory(dimension=stage, name="Browsing"),
        "paid": TagFactory(dimension=stage, name="Paid"),
        "tiktok": TagFactory(dimension=source, name="TikTok"),
    }


@pytest.fixture
def connection(db, vocabulary):
    connection = ChatwootConnection.objects.create(
        name="Support", base_url="https://chat.example.com", account_id=ACCOUNT,
        api_access_token=TOKEN)
    connection.dimensions.set([vocabulary["interest"], vocabulary["stage"]])
    return connection


@pytest.fixture
def agent(db, vocabulary):
    """An agent granted the Interest dimension only."""
    user = UserFactory(username="alice", email="alice@example.com", is_staff=True)
    assign_perm("tagging.apply_dimension_tags", user, vocabulary["interest"])
    return user
