"""Row rules: which column means what, and what one row asks for.

Pure reading and checking: nothing here writes. ``map_columns`` recognises the
columns of Tagwerk's own files and of shop and chat exports as they come
(Shopify, WooCommerce, WATI, Chatwoot); ``RowParser.parse`` turns a raw row into
a ``ParsedRow`` or a ``RowFailure`` with a reason code and a message a person can
act on.

Several columns may mean one thing (Shopify's ``Phone`` and ``Default Address
Phone``): a row takes it from the first of them, by rank, that has a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import phonenumbers
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from crm.csvsafe import FORMULA_START
from crm.models import Contact, Gender
from crm.phones import InvalidPhoneNumber
from tagging.imports.phones import normalize_with_country
from tagging.imports.reader import (
    ROW_ENCODING,
    ROW_NUL,
    ROW_QUOTE,
    ROW_UNREADABLE,
    NumberCell,
    RawRow,
    header_key,
)
from tagging.models import Dimension, Tag, TagVersion, VersionAction
from tagging.names import name_key
from tagging.permissions import can_apply

# Contact fields a file may fill (the import's "facts").
FACT_FIELDS = ["first_name", "last_name", "salutation", "gender", "birth_date", "language",
               "city", "occupation", "external_label", "notes", "purchase_count", "total_spent"]
NUMBER_FIELDS = ("purchase_count", "total_spent")

# Column names, folded by ``header_key``. Rank 0 first; a later rank stands in when the
# row's cells of the ranks before it are empty (shop exports repeat phone, name, city and
# country in their address columns).
ALIASES: dict[str, list[list[str]]] = {
    "phone": [
        ["phone", "phone_number", "phone number", "telefonnummer", "telefon", "mobile",
         "mobile phone", "handynummer", "电话号码", "电话", "手机号", "手机号码", "手机", "wa_id",
         "waid", "whatsapp", "whatsapp number", "whatsapp nummer"],
        ["default address phone", "billing_phone", "billing phone", "address phone"],
        ["shipping_phone", "shipping phone"],
    ],
    "country": [  # the row's own country, for numbers written without country code
        ["default address country code", "country code", "countrycode", "country_code",
         "billing_country", "billing country", "ländercode", "国家代码"],
        ["country", "land", "country / region", "国家", "shipping_country", "shipping country"],
    ],
    "tags": [["tags", "tag", "labels", "label", "label-name", "label name", "标签",
              "tag_names"]],
    "remove_tags": [["remove_tags", "remove tags", "tags_remove", "remove_labels", "删除标签"]],
    "first_name": [["first_name", "first name", "firstname", "given name", "vorname", "名"],
                   ["billing_first_name", "default address first name"],
                   ["shipping_first_name"]],
    "last_name": [["last_name", "last name", "lastname", "surname", "family name", "nachname",
                   "姓"],
                  ["billing_last_name", "default address last name"],
                  ["shipping_last_name"]],
    "name": [["name", "full name", "fullname", "full_name", "customer name", "contact name",
              "姓名", "客户名称"]],
    "email": [["email", "e-mail", "email address", "e-mail-adresse", "邮箱", "电子邮件"],
              ["billing_email", "billing email"]],
    "salutation": [["salutation", "anrede", "称呼"]],
    "gender": [["gender", "sex", "geschlecht", "性别"]],
    "birth_date": [["birth_date", "birthday", "date of birth", "dob", "geburtsdatum", "生日",
                    "出生日期"]],
    "language": [["language", "lang", "sprache", "语言"]],
    "city": [["city", "city / region", "stadt", "ort", "城市"],
             ["default address city", "billing_city", "billing city"],
             ["shipping_city", "shipping city"]],
    "occupation": [["occupation", "job", "beruf", "职业"]],
    "external_label": [["external_label", "external label", "外部标签"]],
    "notes": [["notes", "note", "notiz", "notizen", "备注"]],
    "purchase_count": [["purchases", "purchase_count", "total orders", "orders_count",
                        "orders count", "order count", "number of orders", "orders",
                        "anzahl bestellungen", "bestellungen", "订单数", "订单数量"]],
    "total_spent": [["total_spent", "total spent", "total spend", "amount spent", "umsatz",
                     "gesamtumsatz", "消费总额", "累计消费"]],
    "joined": [  # when the person became a customer
        ["joined", "joined_at", "customer since", "customer_since", "kunde seit", "kundin seit",
         "注册时间", "date_created", "date created", "date registered", "date_registered",
         "registered", "signup date", "created date"],
        ["date_created_gmt", "created_at", "created", "erstellt am", "创建时间"],
    ],
}
# Consent columns and the channel each speaks for: only WhatsApp's decides on its own; a
# "yes" for another channel counts for WhatsApp only when the importer maps it so; a "no"
# anywhere keeps the row from being opted in; "blocked" columns can only say no.
CONSENT_COLUMNS: dict[str, list[str]] = {
    "whatsapp": ["consent_status", "marketing consent", "whatsapp consent", "whatsapp opt-in",
                 "whatsapp opt in", "whatsapp optin", "accepts whatsapp marketing",
                 "whatsapp marketing", "opted in", "opted_in", "optedin", "opt-in", "opt in",
                 "allow broadcast", "allowbroadcast", "whatsapp einwilligung", "whatsapp营销同意"],
    "sms": ["accepts sms marketing", "accepts_sms_marketing", "sms marketing", "allow sms",
            "allowsms", "sms opt-in", "sms consent"],
    "email": ["accepts email marketing", "accepts_email_marketing", "accepts marketing",
              "accepts_marketing", "email marketing", "newsletter", "email opt-in",
              "email consent"],
    "blocked": ["blocked", "is_blocked", "blocklisted", "gesperrt"],
}
# Columns an export writes that an import reads past: they are kept by other means.
READ_ONLY = ["consent_source", "consent source", "consent_at", "updated_at", "id",
             "customer id", "user_id"]
SINGLE = [t for t in ALIASES if t not in ("tags", "remove_tags")]

_ALIAS_INDEX = {header_key(a): (target, rank) for target, ranks in ALIASES.items()
                for rank, names in enumerate(ranks) for a in names}
_CONSENT_INDEX = {header_key(a): channel for channel, names in CONSENT_COLUMNS.items()
                  for a in names}
_READ_ONLY_INDEX = {header_key(a) for a in READ_ONLY}
TAG_SPLIT = re.compile(r"[,;|，；]")
GENDERS = {
    "f": Gender.FEMALE, "female": Gender.FEMALE, "w": Gender.FEMALE, "weiblich": Gender.FEMALE,
    "frau": Gender.FEMALE, "女": Gender.FEMALE, "m": Gender.MALE, "male": Gender.MALE,
    "männlich": Gender.MALE, "mann": Gender.MALE, "男": Gender.MALE, "d": Gender.DIVERSE,
    "diverse": Gender.DIVERSE, "divers": Gender.DIVERSE,
}
DATE_FORMATS = ["%Y-%m-%d", "%d.%m.%Y", "%Y/%m/%d", "%d/%m/%Y"]
DATETIME_FORMATS = ["%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%Y/%m/%d %H:%M",
                    "%Y/%m/%d %H:%M:%S", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M"]

# A consent cell's verdict; anything else (empty, "unknown") says nothing.
YES, NO, OPT_OUT = "yes", "no", "opt_out"
_YES = {"yes", "y", "true", "1", "ja", "j", "x", "是", "optedin", "subscribed", "confirmed",
        "accepted", "allowed"}
_NO = {"no", "n", "false", "0", "nein", "否", "notsubscribed", "pending", "declined",
       "redacted", "invalid", "denied", "notallowed"}
_OPT_OUT = {"optedout", "unsubscribed", "optout", "stop", "abgemeldet", "退订", "已退订"}
_SILENT = {"", "unknown", "none", "null", "-", "n/a", "unbekannt", "未知"}


class Reason:
    """Failure reason codes, as counted in the report."""

    INVALID_PHONE = "invalid_phone"
    DUPLICATE = "duplicate_in_file"
    UNKNOWN_TAG = "unknown_tag"
    FORBIDDEN_TAG = "forbidden_tag"
    ARCHIVED_TAG = "archived_tag"
    CONFLICTING_TAGS = "conflicting_tags"
    INVALID_VALUE = "invalid_value"
    UNREADABLE_ROW = ROW_UNREADABLE
    WRONG_ENCODING = ROW_ENCODING
    UNBALANCED_QUOTE = ROW_QUOTE
    NUL_CHARACTER = ROW_NUL
    ERASED = "erased_number"


class Notice:
    """Warning codes: the row was imported, with something left out or not understood."""

    UNKNOWN_TAG_SKIPPED = "unknown_tag_skipped"
    CONSENT_UNCLEAR = "consent_unclear"


# What a person reads for each code (the report and the preview never show the code).
LABELS = {
    Reason.INVALID_PHONE: gettext_lazy("invalid phone number"),
    Reason.DUPLICATE: gettext_lazy("number repeated in the file"),
    Reason.UNKNOWN_TAG: gettext_lazy("unknown tag"),
    Reason.FORBIDDEN_TAG: gettext_lazy("tag you may not apply"),
    Reason.ARCHIVED_TAG: gettext_lazy("archived tag"),
    Reason.CONFLICTING_TAGS: gettext_lazy("conflicting tags"),
    Reason.INVALID_VALUE: gettext_lazy("value that does not fit its field"),
    Reason.UNREADABLE_ROW: gettext_lazy("row that cannot be read"),
    Reason.WRONG_ENCODING: gettext_lazy("row in another text encoding"),
    Reason.UNBALANCED_QUOTE: gettext_lazy("unbalanced quote"),
    Reason.NUL_CHARACTER: gettext_lazy("NUL character in a cell"),
    Reason.ERASED: gettext_lazy("number erased at its owner's request"),
    Notice.UNKNOWN_TAG_SKIPPED: gettext_lazy("unknown tags skipped"),
    Notice.CONSENT_UNCLEAR: gettext_lazy("consent value not understood (not opted in)"),
}


@dataclass
class Column:
    header: str
    # "phone", "country", "tags", "remove_tags", a fact field, "name", "email", "joined",
    # "consent", "attribute", "ignored" or "unused"
    target: str
    rank: int = 0
    channel: str = ""  # consent columns: whatsapp, sms, email, blocked
    for_whatsapp: bool = False  # another channel's yes counts for WhatsApp (importer's choice)


@dataclass
class ColumnMapping:
    columns: list[Column]

    def indices(self, target: str) -> list[int]:
        """Columns of ``target`` in the order a row tries them: by rank, then position."""
        found = [(c.rank, i) for i, c in enumerate(self.columns) if c.target == target]
        return [i for _rank, i in sorted(found)]

    @property
    def phone_index(self) -> int | None:
        found = self.indices("phone")
        return found[0] if found else None

    def as_list(self) -> list[dict]:
        """For the preview: header and target, with rank, channel and the importer's choice
        where they mean something."""
        listed = []
        for c in self.columns:
            item: dict = {"header": c.header, "target": c.target}
            if c.rank:
                item["rank"] = c.rank
            if c.channel:
                item.update(channel=c.channel, for_whatsapp=c.for_whatsapp)
            listed.append(item)
        return listed


def map_columns(headers: list[str], *, attributes: bool = False,
                consent_for_whatsapp: list[str] | tuple[str, ...] = ()) -> ColumnMapping:
    """Match ``headers`` to contact fields by alias (case-insensitive); dimension names
    are tag columns, as an export writes them. ``consent_for_whatsapp`` names the other
    channels' consent columns whose yes the importer counts as a WhatsApp opt-in."""
    dimensions = {header_key(name) for name in Dimension.objects.values_list("name", flat=True)}
    chosen = {header_key(h) for h in consent_for_whatsapp}
    columns = []
    for header in headers:
        key = header_key(header)
        target, rank = _ALIAS_INDEX.get(key, (None, 0))
        if target is None and key in _CONSENT_INDEX:
            channel = _CONSENT_INDEX[key]
            columns.append(Column(header, "consent", channel=channel,
                                  for_whatsapp=channel in ("sms", "email") and key in chosen))
            continue
        if target is None and key in dimensions:
            target = "tags"
        if target is None:
            if key in _READ_ONLY_INDEX:
                target = "ignored"
            elif attributes and key:
                target = "attribute"
            else:
                target = "unused"
        columns.append(Column(header, target, rank))
    return ColumnMapping(columns)


@dataclass(slots=True)
class ParsedRow:
    number: int
    phone: str
    country: str
    facts: dict[str, object] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    add: list[Tag] = field(default_factory=list)
    remove: list[Tag] = field(default_factory=list)
    joined: datetime | None = None
    consent: str | None = None  # YES, NO, OPT_OUT or None (the file's consent basis)
    consent_column: str = ""  # the column that decided it
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (code, message)
    skipped: tuple[str, ...] = ()  # unknown tags left out (policy "skip")


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


def split_name(full: str) -> tuple[str, str]:
    """("Anna Maria", "Schmidt") from "Anna Maria Schmidt"; a name without spaces (陈美,
    a WhatsApp profile name) stays whole as the first name."""
    parts = full.split()
    if len(parts) < 2:
        return full.strip(), ""
    return " ".join(parts[:-1]), parts[-1]


class TagBook:
    """The tag vocabulary, loaded once per import; optionally creates or skips missing tags."""

    def __init__(self, *, actor, create_in: Dimension | None = None, dry_run: bool = False,
                 reason: str = "", skip_unknown: bool = False):
        self.actor, self.create_in, self.dry_run, self.reason = actor, create_in, dry_run, reason
        self.skip_unknown = skip_unknown
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
        self.phones = mapping.indices("phone")
        self.phone_index = self.phones[0] if self.phones else None
        # (target, columns in the order tried) of every single-valued field in the file.
        self.singles = [(t, found) for t in SINGLE if t != "phone"
                        if (found := mapping.indices(t))]
        self.plain = not {t for t, _found in self.singles} & {"name", "email", "joined"}
        self.tag_columns = mapping.indices("tags")
        self.remove_columns = mapping.indices("remove_tags")
        self.attribute_columns = [(i, c.header) for i, c in enumerate(mapping.columns)
                                  if c.target == "attribute"]
        self.consent_columns = [(i, c) for i, c in enumerate(mapping.columns)
                                if c.target == "consent"]
        self._checked: dict[tuple, tuple] = {}
        self.max_length = {
            name: Contact._meta.get_field(name).max_length for name in FACT_FIELDS
        }

    def parse(self, raw: RawRow) -> ParsedRow | RowFailure:
        if raw.error:
            return RowFailure(raw.number, raw.reason, raw.error, raw.cells)
        cells = raw.cells
        size = len(cells)
        # Loops written out: this runs once per row of a million-row file.
        values: dict[str, str] = {}
        for target, found in self.singles:
            for index in found:
                if index < size and (cell := cells[index]) and not cell.isspace():
                    values[target] = unescape(cell.strip())
                    break
        phone_cell = ""
        for index in self.phones:
            if index < size and (cell := cells[index]) and not cell.isspace():
                phone_cell = cell
                break
        try:
            phone, country = self._phone(phone_cell, values.pop("country", ""))
        except InvalidPhoneNumber as exc:
            return RowFailure(raw.number, Reason.INVALID_PHONE, str(exc), cells)
        row = ParsedRow(raw.number, phone, country)
        if values:
            problem = self._values(row, values)
            if problem:
                return RowFailure(raw.number, Reason.INVALID_VALUE, problem, cells)
        for index, header in self.attribute_columns:
            if index < size and (value := unescape(cells[index].strip())):
                row.attributes[header] = value
        if self.consent_columns:
            self._consent(row, cells)
        add_names = [n for i in self.tag_columns if i < size
                     for n in split_tags(unescape(cells[i].strip()))]
        remove_names = [n for i in self.remove_columns if i < size
                        for n in split_tags(unescape(cells[i].strip()))] \
            if self.remove_columns else []
        return self._tags(row, add_names, remove_names, cells)

    def _phone(self, cell: str, country: str) -> tuple[str, str]:
        region = (_region(country) or self.region) if country else self.region
        text = cell if isinstance(cell, NumberCell) else unescape(cell.strip())
        if text.isdigit() and text[0] != "0":
            # Bare digits: Excel dropped a "+" or a trunk "0", or a chat tool exported a
            # WhatsApp id (4915123…). Starting with the country code, they lost their "+".
            code = str(phonenumbers.country_code_for_region(region or "")) or "-"
            national = f"0{text}" if isinstance(cell, NumberCell) else text
            guesses = [f"+{text}", national] if text.startswith(code) else [national,
                                                                          f"+{text}"]
            for guess in guesses:
                try:
                    return normalize_with_country(guess, region)
                except InvalidPhoneNumber:
                    continue
        return normalize_with_country(text, region)

    def _values(self, row: ParsedRow, values: dict[str, str]) -> str:
        """Put the row's single values in place; a message when one does not fit."""
        if self.plain:  # no name, e-mail or customer-since column: facts only
            for target, value in values.items():
                problem = self._fact(row, target, value)
                if problem:
                    return f"{self._header(target)}: {problem}"
            return ""
        name = values.pop("name", "")
        if name and "first_name" not in values and "last_name" not in values:
            first, last = split_name(name)
            values["first_name"] = first
            if last:
                values["last_name"] = last
        email = values.pop("email", "")
        if email:
            row.attributes["email"] = email
        joined = values.pop("joined", "")
        if joined:
            row.joined = parse_moment(joined)
            if row.joined is None:
                return _("%(col)s: “%(v)s” is not a date; write it as YYYY-MM-DD.") % {
                    "col": self._header("joined"), "v": joined}
        for target, value in values.items():
            problem = self._fact(row, target, value)
            if problem:
                return f"{self._header(target)}: {problem}"
        return ""

    def _header(self, target: str) -> str:
        found = self.mapping.indices(target)
        return self.mapping.columns[found[0]].header if found else target

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
        elif name == "purchase_count":
            number = parse_amount(value)
            if number is None or number < 0 or number != number.to_integral_value() \
                    or number > 2_000_000_000:
                return _("“%(v)s” is not a number of orders.") % {"v": value}
            row.facts[name] = int(number)
        elif name == "total_spent":
            amount = parse_amount(value)
            if amount is None or abs(amount) >= 10**12:
                return _("“%(v)s” is not an amount; write it like 1234.50.") % {"v": value}
            row.facts[name] = amount.quantize(Decimal("0.01"))
        else:
            limit = self.max_length.get(name)
            if limit and len(value) > limit:
                return _("is %(n)d characters long; at most %(max)d fit.") % {
                    "n": len(value), "max": limit}
            row.facts[name] = value
        return ""

    def _consent(self, row: ParsedRow, cells: list[str]) -> None:
        """The row's own say on WhatsApp consent (``consent_verdict``)."""
        said: list[tuple[str, str, str]] = []  # (kind, verdict, header)
        for index, column in self.consent_columns:
            value = cells[index] if index < len(cells) else ""
            verdict = consent_value(value, column.channel)
            if verdict is None:
                continue
            if verdict == "":
                row.warnings.append((Notice.CONSENT_UNCLEAR, _(
                    "%(col)s: “%(v)s” is neither yes nor no; the row is not opted in.") % {
                        "col": column.header, "v": value.strip()[:40]}))
                verdict = NO
            kind = ("whatsapp" if column.channel in ("whatsapp", "blocked")
                    else "mapped" if column.for_whatsapp else "other")
            said.append((kind, verdict, column.header))
        row.consent, row.consent_column = consent_verdict(said)

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
        if checked[2]:
            row.skipped = checked[2]
            row.warnings.append((Notice.UNKNOWN_TAG_SKIPPED, _skipped_message(checked[2])))
        return row

    def _check_tags(self, add_names: list[str], remove_names: list[str]) -> tuple:
        """(tags to add, tags to remove, unknown names skipped), or (reason, message) when
        the row must fail."""
        add: list[Tag] = []
        remove: list[Tag] = []
        skipped: list[str] = []
        for names, target in ((add_names, add), (remove_names, remove)):
            for name in dict.fromkeys(names):
                tag = self.tags.get(name) if target is add else self.tags.by_key.get(
                    _key(name))
                if tag is None and self.tags.skip_unknown:
                    skipped.append(name)
                    continue
                if tag is None:
                    return (Reason.UNKNOWN_TAG, _(
                        "The tag “%(tag)s” does not exist. Create it first, or import with "
                        "“skip unknown tags” (or, as a tag administrator, “create missing "
                        "tags”).") % {"tag": name})
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
        return tuple(add), tuple(remove), tuple(skipped)


def _skipped_message(names: tuple[str, ...]) -> str:
    return ngettext("The tag %(tags)s does not exist and was skipped.",
                    "The tags %(tags)s do not exist and were skipped.", len(names)) % {
        "tags": ", ".join(f"“{n}”" for n in names)}


def consent_value(cell: str, channel: str) -> str | None:
    """YES, NO or OPT_OUT for a consent cell of ``channel``; None when it says nothing;
    "" when it cannot be read (the caller treats that as no)."""
    text = re.sub(r"[\s_\-]+", "", cell.strip().casefold())
    if text in _SILENT:
        return None
    if channel == "blocked":  # only a block says something: never opt in a blocked row
        return NO if text in _YES else None
    if text in _YES:
        return YES
    if text in _OPT_OUT:
        return OPT_OUT if channel == "whatsapp" else NO
    if text in _NO:
        return NO
    return ""


def consent_verdict(said: list[tuple[str, str, str]]) -> tuple[str | None, str]:
    """The row's WhatsApp consent from what its consent columns say, and the column that
    decided: WhatsApp's own columns decide; failing them, the other channels' columns the
    importer mapped to WhatsApp (any no wins); failing those, a no in any other channel
    keeps the row from being opted in and its yes counts for nothing. None: the row says
    nothing, the file's consent basis applies."""
    for kind in ("whatsapp", "mapped"):
        verdicts = [(v, h) for k, v, h in said if k == kind]
        for wanted in (OPT_OUT, NO, YES):
            for verdict, header in verdicts:
                if verdict == wanted:
                    return verdict, header
    for _kind, verdict, header in said:
        if verdict in (NO, OPT_OUT):
            return NO, header
    return None, ""


@lru_cache(maxsize=512)
def _region(value: str) -> str:
    """A row's country as a region for phone numbers: "DE", "de", "+49", "49" or "0049"."""
    text = value.strip().upper().lstrip("'")
    if len(text) == 2 and text.isalpha():
        return text if text in phonenumbers.SUPPORTED_REGIONS else ""
    digits = text.lstrip("+")
    digits = digits[2:] if digits.startswith("00") else digits
    if digits.isdigit() and len(digits) <= 3:
        region = phonenumbers.region_code_for_country_code(int(digits))
        return "" if region == "ZZ" else region
    return ""


def parse_amount(value: str) -> Decimal | None:
    """A number as shops write it: "1234.5", "1,234.50", "1.234,50", "€ 12,50", "12 EUR"."""
    text = re.sub(r"[^\d,.\-]", "", value)
    if not re.search(r"\d", text):
        return None
    if "," in text and "." in text:
        decimal = "," if text.rfind(",") > text.rfind(".") else "."
    elif "," in text:
        # "12,50" is a decimal comma; "1,234" (three digits after) groups thousands.
        decimal = "," if not re.fullmatch(r"-?\d{1,3}(,\d{3})+", text) else ""
    else:
        decimal = "." if not re.fullmatch(r"-?\d{1,3}(\.\d{3}){2,}", text) else ""
    thousands = {",": ".", ".": ",", "": ",."}[decimal]
    for mark in thousands:
        text = text.replace(mark, "")
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None


def parse_moment(value: str) -> datetime | None:
    """A date or date and time as exports write them (ISO 8601 with or without zone,
    "2021-03-04 10:20:30 UTC", "04.03.2021", "04.03.2021 10:20"), made aware in the
    site's time zone when it gives none."""
    text = value.strip()
    if text.upper().endswith(" UTC"):
        text = text[:-4] + "+00:00"
    text = re.sub(r"(\d) ([+-]\d\d:?\d\d)$", r"\1\2", text)
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        day = _date(text)
        if day is not None:
            moment = datetime.combine(day, time())
    if moment is None:
        for fmt in DATETIME_FORMATS:
            try:
                moment = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if moment is None:
        return None
    if timezone.is_naive(moment):
        try:
            moment = timezone.make_aware(moment)
        except (ValueError, OverflowError):
            return None
    return moment


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
