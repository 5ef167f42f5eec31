"""Tagwerk tag names ↔ Chatwoot label names.

Chatwoot's labels are lower case without spaces (letters, digits, ``-`` and ``_``):
“High-value customer” is ``high-value-customer``, “高价值” stays ``高价值``. Two tags
that would share a label (“A & B”, “A B”) are told apart by the later tag's id.
"""

from __future__ import annotations

from django.utils.text import slugify

from campaigns.chatwoot.models import ChatwootConnection
from tagging.models import Tag


def label_of(name: str) -> str:
    """Chatwoot's spelling of a tag name."""
    return slugify(name, allow_unicode=True)[:200]


def synced_tags(connection: ChatwootConnection) -> list[Tag]:
    return list(Tag.objects.filter(dimension__in=connection.dimensions.all())
                .select_related("dimension").order_by("pk"))


def label_map(connection: ChatwootConnection) -> dict[str, Tag]:
    """Label → tag for every tag of the connection's synced dimensions (oldest tag first)."""
    mapping: dict[str, Tag] = {}
    for tag in synced_tags(connection):
        label = label_of(tag.name) or f"tag-{tag.pk}"
        if label in mapping:
            label = f"{label}-{tag.pk}"
        mapping[label] = tag
    return mapping


def labels_of_tags(connection: ChatwootConnection) -> dict[int, str]:
    """Tag id → label, the same mapping the other way."""
    return {tag.pk: label for label, tag in label_map(connection).items()}
