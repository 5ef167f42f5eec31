from colorfield.fields import ColorField
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import Contact
from tagging.names import name_key


class Dimension(models.Model):
    """A family of tags, e.g. “Purchase stage”; its colour marks all its tags."""

    name = models.CharField(_("name"), max_length=80)
    name_key = models.CharField(max_length=80, unique=True, editable=False)
    colour = ColorField(_("colour"), default="#4C6EF5")
    description = models.TextField(_("description"), blank=True)
    order = models.PositiveSmallIntegerField(_("order"), default=0)
    single_choice = models.BooleanField(
        _("single choice"), default=False,
        help_text=_("A contact holds at most one tag of this dimension; applying one "
                    "replaces the other (e.g. purchase stage, lifecycle)."),
    )
    is_archived = models.BooleanField(
        _("archived"), default=False,
        help_text=_("An archived dimension and its tags can no longer be applied; existing "
                    "assignments stay and still count in segments."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("dimension")
        verbose_name_plural = _("dimensions")
        ordering = ["order", "name"]
        permissions = [
            ("apply_dimension_tags", _("May apply and remove tags of this dimension")),
            ("define_dimension_tags", _("May define tags in this dimension")),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.name_key = name_key(self.name)
        super().save(*args, **kwargs)


class TagKind(models.TextChoices):
    STATIC = "static", _("static (rarely changes)")
    DYNAMIC = "dynamic", _("dynamic (kept by rules)")


class Tag(models.Model):
    dimension = models.ForeignKey(
        Dimension, on_delete=models.PROTECT, related_name="tags", verbose_name=_("dimension")
    )
    name = models.CharField(_("name"), max_length=120)
    name_key = models.CharField(
        max_length=120, unique=True, editable=False,
        help_text=_("The name folded for comparison; unique across all tags."),
    )
    colour = ColorField(
        _("colour"), blank=True, default="",
        help_text=_("Leave empty to use the dimension's colour."),
    )
    symbol = models.CharField(
        _("symbol"), max_length=8, blank=True, help_text=_("Short mark such as ★, ☾, 0 to 3.")
    )
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=10, choices=TagKind.choices,
                            default=TagKind.STATIC)
    lifetime_days = models.PositiveIntegerField(
        _("lifetime (days)"), null=True, blank=True,
        help_text=_("When set, each new assignment expires after this many days."),
    )
    is_archived = models.BooleanField(
        _("archived"), default=False,
        help_text=_("Archived tags can no longer be applied but keep their history."),
    )
    archived_with_dimension = models.BooleanField(
        _("archived with its dimension"), default=False, editable=False,
        help_text=_("Archived because its dimension was; restoring the dimension restores "
                    "it. A tag archived on its own before stays archived."),
    )
    contacts = models.ManyToManyField(
        Contact, through="TagAssignment", related_name="tags", verbose_name=_("contacts")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["dimension__order", "dimension__name", "name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.name_key = name_key(self.name)
        super().save(*args, **kwargs)

    @property
    def display_colour(self) -> str:
        return self.colour or self.dimension.colour


class Source(models.TextChoices):
    """Where a tag change came from."""

    MANUAL = "manual", _("manual")
    IMPORT = "import", _("import")
    RULE = "rule", _("rule")
    BULK = "bulk", _("bulk action")
    API = "api", _("API")
    CAMPAIGN = "campaign", _("campaign")
    EXPIRY = "expiry", _("expiry")
    MERGE = "merge", _("merge")
    UNDO = "undo", _("undo")
    SYSTEM = "system", _("system")
    ENTRY_POINT = "entrypoint", _("entry point")


class TagAssignment(models.Model):
    """A contact holds a tag. One row per (contact, tag)."""

    # Both directions are served by the composite indexes in Meta, so the
    # single-column FK indexes would only slow writes at 10M rows. No database
    # constraints: see migration 0002_assignment_cascades for why and what keeps the table whole.
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="tag_assignments",
                                db_index=False, db_constraint=False)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="assignments",
                            db_index=False, db_constraint=False)
    assigned_at = models.DateTimeField(_("assigned"), default=timezone.now)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices,
                              default=Source.MANUAL)
    source_ref = models.CharField(
        _("source reference"), max_length=100, blank=True,
        help_text=_("Which import, rule, bulk operation or campaign, e.g. “rule:7”."),
    )
    # Indexed only where set: rules, imports and bulk changes write no actor, and a full
    # index would cost each of their hundreds of thousands of rows an insertion.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("by"), db_index=False,
    )
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)

    class Meta:
        verbose_name = _("tag assignment")
        verbose_name_plural = _("tag assignments")
        constraints = [
            models.UniqueConstraint(fields=["contact", "tag"], name="tagging_assignment_unique"),
        ]
        indexes = [
            # The unique constraint serves "tags of a contact"; this serves "contacts of a tag".
            models.Index(fields=["tag", "contact"], name="tagging_assign_tag_contact"),
            models.Index(fields=["expires_at"], name="tagging_assign_expires",
                         condition=Q(expires_at__isnull=False)),
            models.Index(fields=["actor"], name="tagging_assign_actor",
                         condition=Q(actor__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} · {self.tag_id}"


class HistoryAction(models.TextChoices):
    ADDED = "added", _("added")
    REMOVED = "removed", _("removed")


class AssignmentHistory(models.Model):
    """Append-only log of every tag added to or removed from a contact."""

    # No database constraints: the log outlives deleted tags and contacts. No single-column
    # indexes either: the (contact, at) and (tag, at) indexes serve those lookups, and every
    # index is paid on each of the hundreds of thousands of rows a bulk change appends.
    contact = models.ForeignKey(Contact, on_delete=models.DO_NOTHING, related_name="tag_history",
                                db_constraint=False, db_index=False)
    tag = models.ForeignKey(Tag, on_delete=models.DO_NOTHING, related_name="history",
                            db_constraint=False, db_index=False)
    action = models.CharField(_("action"), max_length=8, choices=HistoryAction.choices)
    reason = models.CharField(
        _("reason"), max_length=10, choices=Source.choices,
        help_text=_("What caused it; a single-choice replacement is logged with reason "
                    "“replaced”."),
    )
    replaced = models.BooleanField(_("replaced"), default=False)
    source_ref = models.CharField(_("source reference"), max_length=100, blank=True)
    operation = models.UUIDField(_("operation"), db_index=True,
                                 help_text=_("All rows written by one call share this id."))
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              blank=True, related_name="+", db_constraint=False, db_index=False)
    at = models.DateTimeField(_("when"), default=timezone.now)

    class Meta:
        verbose_name = _("assignment history")
        verbose_name_plural = _("assignment history")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["contact", "at"], name="tagging_hist_contact_at"),
            models.Index(fields=["tag", "at"], name="tagging_hist_tag_at"),
            models.Index(fields=["actor"], name="tagging_hist_actor",
                         condition=Q(actor__isnull=False)),  # as on assignments
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.tag_id} on {self.contact_id}"


class VersionAction(models.TextChoices):
    CREATED = "created", _("created")
    RENAMED = "renamed", _("renamed")
    RECOLOURED = "recoloured", _("recoloured")
    MOVED = "moved", _("moved to another dimension")
    CHANGED = "changed", _("changed")
    ARCHIVED = "archived", _("archived")
    RESTORED = "restored", _("restored")
    MERGED = "merged", _("merged")
    DELETED = "deleted", _("deleted")


class TagVersion(models.Model):
    """The tag version log: how the vocabulary changed, by whom and why."""

    at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              blank=True, related_name="+", verbose_name=_("by"))
    action = models.CharField(_("action"), max_length=12, choices=VersionAction.choices)
    object_type = models.CharField(_("object"), max_length=10,
                                   choices=[("tag", _("tag")), ("dimension", _("dimension"))])
    object_id = models.BigIntegerField(_("object id"))
    object_name = models.CharField(_("name"), max_length=120)
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        verbose_name = _("tag version log entry")
        verbose_name_plural = _("tag version log")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d} {self.action} {self.object_name}"
