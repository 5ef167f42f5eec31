"""Row rules: which column means what, and what one row asks for.

Pure reading and checking: nothing here writes. ``RowParser.parse`` turns a raw
row into a ``ParsedRow`` or a ``RowFailure`` with a reason code and a message
a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache

import phonenumbers
from django.conf import settings
from django.utils.translation import gettext as _

from crm.models import Contact, Gender
from crm.phones import InvalidPhoneNumber
from tagging.imports.phones import normalize_with_country
from tagging.imports.reader import NumberCell, RawRow, header_key
from tagging.models import Dimension, Tag, TagVersion, VersionAction
from tagging.names import name_key
from tagging.permissions import can_apply

FACT_FIELDS = ["first_name", "last_name", "salutation", "gender", "birth_date", "language",
               "city", "occupation", "external_label", "notes"]

ALIASES: dict[str, list[str]] = {
    "phone": ["phone", "phone_number", "phone number", "telefonnummer", "telefon", "mobile",
              "handynummer", "电话号码", "电话", "手机号", "手机号码", "wa_id", "whatsapp"],
    "tags": ["tags", "tag", "labels", "label", "label-name", "label name", "标签", "tag_names"],
    "remove_tags": ["remove_tags", "remove tags", "tags_remove", "remove_labels", "删除标签"],
    "first_name": ["first_name", "first name", "firstname", "given name", "vorname", "名"],
    "last_name": ["last_name", "last name", "lastname", "surname", "family name", "nachname",
                  "姓"],
    "salutation": ["salutation", "anrede", "称呼"],
    "gender": ["gender", "sex", "geschlecht", "性别"],
    "birth_date": ["birth_date", "birthday", "date of birth", "dob", "geburtsdatum", "生日",
                   "出生日期"],
    "language": ["language", "lang", "sprache", "语言"],
    "city": ["city", "city / region", "region", "stadt", "ort", "城市"],
    "occupation": ["occupation", "job", "beruf", "职业"],
    "external_label": ["external_label", "external label", "外部标签"],
    "notes": ["notes", "note", "notiz", "notizen", "备注"],
}
# Columns an export writes that an import reads past: they are kept by other means.
READ_ONLY = ["country", "consent_status", "marketing consent", "consent_source",
             "consent source", "consent_at", "is_blocked", "blocklisted", "created_at",
             "updated_at", "id"]
_ALIAS_INDEX = {header_key(a): target for target, names in ALIASES.items() for a in names}
_READ_ONLY_INDEX = {header_key(a) for a in READ_ONLY}
TAG_SPLIT = re.compile(r"[,;|，；]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
GENDERS = {
    "f": Gender.FEMALE, "female": Gender.FEMALE, "w": Gender.FEMALE, "weiblich": Gender.FEMALE,
    "frau": Gender.FEMALE, "女": Gender.FEMALE, "m": Gender.MALE, "male": Gender.MALE,
    "männlich": Gender.MALE, "mann": Gender.MALE, "男": Gender.MALE, "d": Gender.DIVERSE,
    "diverse": Gender.DIVERSE, "divers": Gender.DIVERSE,
}
DATE_FORMATS = ["%Y-%m-%d", "%d.%m.%Y", "%Y/%m/%d", "%d/%m/%Y"]


class Reason:
    """Failure reason codes, as counted in the report."""

    INVALID_PHONE = "invalid_phone"
    DUPLICATE = "duplicate_in_file"
    UNKNOWN_TAG = "unknown_tag"
    FORBIDDEN_TAG = "forbidden_tag"
    ARCHIVED_TAG = "archived_tag"
    CONFLICTING_TAGS = "conflicting_tags"
    INVALID_VALUE = "invalid_value"
    UNREADABLE_ROW = "unreadable_row"


@dataclass
class Column:
    header: str
    target: str  # "phone", "tags", "remove_tags", a fact field, "attribute", "ignored", "unused"


@dataclass
class ColumnMapping:
    columns: list[Column]

    @property
    def phone_index(self) -> int | None:
        return next((i for i, c in enumerate(self.columns) if c.target == "phone"), None)

    def as_list(self) -> list[dict[str, str]]:
        return [{"header": c.header, "target": c.target} for c in self.columns]


def map_columns(headers: list[str], *, attributes: bool = False) -> ColumnMapping:
    """Match ``headers`` to contact fields by alias (case-insensitive); dimension names
    are tag columns, as an export writes them."""
    dimensions = {header_key(name) for name in Dimension.objects.values_list("name", flat=True)}
    seen: set[str] = set()
    columns = []
    for header in headers:
        key = header_key(header)
        target = _ALIAS_INDEX.get(key)
        if target is None and key in dimensions:
            target = "tags"
        if target and target != "tags" and target in seen:
            target = None  # the first column of a kind wins
        if target is None:
            if key in _READ_ONLY_INDEX:
                target = "ignored"
            elif attributes and key:
                target = "attribute"
            else:
                target = "unused"
        seen.add(target)
        columns.append(Column(header, target))
    return ColumnMapping(columns)


@dataclass
class ParsedRow:
    number: int
    phone: str
    country: str
    facts: dict[str, object] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    add: list[Tag] = field(default_factory=list)
    remove: list[Tag] = field(default_factory=list)


@dataclass
class RowFailure:
    number: int
    reason: str
    message: str
    cells: list[str]


def unescape(value: str) -> str:
    """Undo the export's formula escaping, so an export reads back unchanged."""
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_START:
        return value[1:]
    return value


def split_tags(cell: str) -> list[str]:
    return [name.strip() for name in TAG_SPLIT.split(cell) if name.strip()]


class TagBook:
    """The tag vocabulary, loaded once per import; optionally creates missing tags."""

    def __init__(self, *, actor, create_in: Dimension | None = None, dry_run: bool = False,
                 reason: str = ""):
        self.actor, self.create_in, self.dry_run, self.reason = actor, create_in, dry_run, reason
        self.by_key = {t.name_key: t for t in Tag.objects.select_related("dimension")}
        self._allowed: dict[int, bool] = {}
        self.created: list[str] = []

    def allowed(self, tag: Tag) -> bool:
        if tag.dimension_id not in self._allowed:
            self._allowed[tag.dimension_id] = can_apply(self.actor, tag.dimension)
        return self._allowed[tag.dimension_id]

    def get(self, name: str) -> Tag | None:
        key = _key(name)
        tag = self.by_key.get(key)
        if tag is None and self.create_in is not None:
            tag = Tag(name=name[:120], dimension=self.create_in, name_key=key)
            if not self.dry_run:
                tag.save()
                TagVersion.objects.create(
                    actor=self.actor, action=VersionAction.CREATED, object_type="tag",
                    object_id=tag.pk, object_name=tag.name,
                    changes={"dimension": self.create_in.name}, reason=self.reason)
            self.by_key[key] = tag
            self.created.append(tag.name)
        return tag


class RowParser:
    def __init__(self, mapping: ColumnMapping, *, region: str | None, tags: TagBook):
        self.mapping, self.tags = mapping, tags
        self.region = region or settings.TAGWERK_DEFAULT_REGION
        self.phone_index = mapping.phone_index
        self._checked: dict[tuple, tuple] = {}
        self.max_length = {
            name: Contact._meta.get_field(name).max_length for name in FACT_FIELDS
        }

    def parse(self, raw: RawRow) -> ParsedRow | RowFailure:
        if raw.error:
            return RowFailure(raw.number, raw.reason, raw.error, raw.cells)
        cells = raw.cells
        phone_cell = cells[self.phone_index] if self.phone_index < len(cells) else ""
        try:
            phone, country = self._phone(phone_cell)
        except InvalidPhoneNumber as exc:
            return RowFailure(raw.number, Reason.INVALID_PHONE, str(exc), cells)
        row = ParsedRow(raw.number, phone, country)
        add_names: list[str] = []
        remove_names: list[str] = []
        for column, cell in zip(self.mapping.columns, cells, strict=False):
            value = unescape(cell.strip())
            target = column.target
            if not value or target in ("phone", "ignored", "unused"):
                continue
            if target == "tags":
                add_names += split_tags(value)
            elif target == "remove_tags":
                remove_names += split_tags(value)
            elif target == "attribute":
                row.attributes[column.header] = value
            else:
                problem = self._fact(row, target, value)
                if problem:
                    return RowFailure(raw.number, Reason.INVALID_VALUE,
                                      f"{column.header}: {problem}", cells)
        return self._tags(row, add_names, remove_names, cells)

    def _phone(self, cell: str) -> tuple[str, str]:
        if isinstance(cell, NumberCell):
            # Digits starting with the region's country code lost their "+"; others most
            # likely lost their trunk "0".
            code = str(phonenumbers.country_code_for_region(self.region or "")) or "-"
            guesses = [f"+{cell}", f"0{cell}"] if cell.startswith(code) else [f"0{cell}",
                                                                            f"+{cell}"]
            for guess in guesses:
                try:
                    return normalize_with_country(guess, self.region)
                except InvalidPhoneNumber:
                    continue
        return normalize_with_country(unescape(cell.strip()), self.region)

    def _fact(self, row: ParsedRow, name: str, value: str) -> str:
        if name == "gender":
            gender = GENDERS.get(value.casefold())
            if gender is None:
                return _("“%(v)s” is not a gender; use f, m or d.") % {"v": value}
            row.facts[name] = gender
        elif name == "birth_date":
            parsed = _date(value)
            if parsed is None:
                return _("“%(v)s” is not a date; write it as YYYY-MM-DD.") % {"v": value}
            row.facts[name] = parsed
        else:
            limit = self.max_length.get(name)
            if limit and len(value) > limit:
                return _("is %(n)d characters long; at most %(max)d fit.") % {
                    "n": len(value), "max": limit}
            row.facts[name] = value
        return ""

    def _tags(self, row: ParsedRow, add_names: list[str], remove_names: list[str],
              cells: list[str]) -> ParsedRow | RowFailure:
        # Files repeat the same few tag cells on every row: check each combination once.
        key = (tuple(add_names), tuple(remove_names))
        checked = self._checked.get(key)
        if checked is None:
            checked = self._check_tags(add_names, remove_names)
            if len(self._checked) < 100_000:
                self._checked[key] = checked
        if isinstance(checked[0], str):
            return RowFailure(row.number, checked[0], checked[1], cells)
        row.add, row.remove = list(checked[0]), list(checked[1])
        return row

    def _check_tags(self, add_names: list[str], remove_names: list[str],
                    ) -> tuple[tuple[Tag, ...], tuple[Tag, ...]] | tuple[str, str]:
        """(tags to add, tags to remove), or (reason, message) when the row must fail."""
        add: list[Tag] = []
        remove: list[Tag] = []
        for names, target in ((add_names, add), (remove_names, remove)):
            for name in dict.fromkeys(names):
                tag = self.tags.get(name) if target is add else self.tags.by_key.get(
                    _key(name))
                if tag is None:
                    return (Reason.UNKNOWN_TAG, _(
                        "The tag “%(tag)s” does not exist. Create it first or ask a tag "
                        "administrator to import with “create missing tags”.") % {"tag": name})
                if not self.tags.allowed(tag):
                    return (Reason.FORBIDDEN_TAG, _(
                        "You may not apply or remove the tag “%(tag)s” (dimension “%(dim)s”).")
                        % {"tag": tag.name, "dim": tag.dimension.name})
                if tag.is_archived and target is add:
                    return (Reason.ARCHIVED_TAG, _(
                        "The tag “%(tag)s” is archived and can no longer be applied.")
                        % {"tag": tag.name})
                if tag not in target:
                    target.append(tag)
        both = {t.name for t in add} & {t.name for t in remove}
        if both:
            return (Reason.CONFLICTING_TAGS, _(
                "“%(tags)s” is both added and removed in this row.")
                % {"tags": ", ".join(sorted(both))})
        single: dict[int, str] = {}
        for tag in add:
            if tag.dimension.single_choice:
                if tag.dimension_id in single:
                    return (Reason.CONFLICTING_TAGS, _(
                        "“%(a)s” and “%(b)s” belong to the single-choice dimension “%(d)s”; "
                        "keep one.") % {"a": single[tag.dimension_id], "b": tag.name,
                                        "d": tag.dimension.name})
                single[tag.dimension_id] = tag.name
        return tuple(add), tuple(remove)


@lru_cache(maxsize=4096)
def _key(name: str) -> str:
    """Tag names repeat on every row: fold each spelling once."""
    return name_key(name)


def _date(value: str) -> date | None:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(value[:10] if fmt == "%Y-%m-%d" else value, fmt).date()
        except ValueError:
            continue
    return None
