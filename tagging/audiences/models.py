"""Saved segments and recorded bulk tag operations."""

from __future__ import annotations

import uuid
import zlib
from array import array

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tagging.audiences.language import SegmentError, parse


class Segment(models.Model):
    """A named audience: an expression in the segment language, with a cached count."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    expression = models.TextField(
        _("expression"),
        help_text=_('Segment language, e.g. ("VIP" OR "SVIP") AND last_interaction within 30d. '
                    "See docs/audiences.md."),
    )
    description = models.TextField(_("description"), blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              blank=True, related_name="+", verbose_name=_("owner"))
    count = models.PositiveIntegerField(
        _("contacts"), null=True, blank=True, editable=False,
        help_text=_("Matching contacts when last counted; refreshed on demand and hourly."),
    )
    counted_at = models.DateTimeField(_("counted at"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            parse(self.expression)
        except SegmentError as error:
            raise ValidationError({"expression": str(error)}) from None


class BulkStatus(models.TextChoices):
    PENDING = "pending", _("waiting for a worker")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")
    UNDONE = "undone", _("undone")


class BulkOperation(models.Model):
    """One “Manage tags” run: who, when, on what, the counts, and how to undo it.

    ``operation`` is the id ``tags_change`` writes on every history row, so
    ``operation_undo(operation=...)`` takes back exactly these changes. The
    contacts are fixed when the user confirms (stored compactly in
    ``contact_blob``), so a worker changes exactly what the confirmation page
    counted, even if the filter would match others by then.
    """

    operation = models.UUIDField(_("operation"), default=uuid.uuid4, unique=True, editable=False)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              blank=True, related_name="+", verbose_name=_("by"))
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=BulkStatus.choices,
                              default=BulkStatus.PENDING)
    expression = models.TextField(
        _("selection"), blank=True,
        help_text=_("The expression and filters the contacts were chosen by, as the user saw "
                    "them."),
    )
    add_tag_ids = models.JSONField(_("tags added"), default=list, blank=True)
    remove_tag_ids = models.JSONField(_("tags removed"), default=list, blank=True)
    preview = models.JSONField(
        _("preview"), default=dict, blank=True,
        help_text=_("Per tag, how many contacts were to gain or lose it when confirmed."),
    )
    total = models.PositiveIntegerField(_("contacts"), default=0)
    processed = models.PositiveIntegerField(_("processed"), default=0)
    added = models.PositiveIntegerField(_("added"), default=0)
    removed = models.PositiveIntegerField(_("removed"), default=0)
    replaced = models.PositiveIntegerField(_("replaced"), default=0)
    error = models.TextField(_("error"), blank=True)
    undone_at = models.DateTimeField(_("undone at"), null=True, blank=True)
    undone_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                  blank=True, related_name="+", verbose_name=_("undone by"))
    contact_blob = models.BinaryField(editable=False, default=b"")

    class Meta:
        verbose_name = _("bulk tag operation")
        verbose_name_plural = _("bulk tag operations")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} · {self.total} · {self.get_status_display()}"

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.processed / self.total))

    @staticmethod
    def pack_ids(ids: list[int]) -> bytes:
        """Sorted ids as zlib-compressed deltas: a million ids take a few hundred KB."""
        ordered = sorted(ids)
        deltas = array("q", (b - a for a, b in zip([0, *ordered], ordered, strict=False)))
        return zlib.compress(deltas.tobytes(), 6)

    def contact_ids(self) -> list[int]:
        deltas = array("q")
        deltas.frombytes(zlib.decompress(bytes(self.contact_blob)))
        ids, running = [], 0
        for delta in deltas:
            running += delta
            ids.append(running)
        return ids
