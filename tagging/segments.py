"""The segment expression language: one way to say “which contacts”.

    ("VIP" OR "SVIP") AND NOT "Drohender Abwanderer"
    "Kaufkraft/*" AND purchases > 3 AND last_interaction within 30d

Grammar (keywords and tag names are case-insensitive; ``--`` starts a comment)::

    expr       := term ("OR" term)*
    term       := factor ("AND" factor)*
    factor     := "NOT" factor | "(" expr ")" | tag | condition
    tag        := STRING          -- "Name", "Dimension/Name" or "Dimension/*"
    condition  := FIELD OP value | FIELD "within" DURATION
    OP         := "=" | "!=" | ">" | ">=" | "<" | "<="
    DURATION   := NUMBER ("h" | "d" | "w")

A small hand-written recursive-descent parser rather than a parser library:
the grammar has eleven tokens, and owning the tokenizer lets every error name
its exact position and the nearest valid names. Expressions compile to one
Django ``Q`` of ``EXISTS`` subqueries, so the database does all the work;
counts of tags are answered from per-tag bitmaps (``tagging.bitmaps``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from pyroaring import BitMap

from crm.models import ConsentStatus, Contact
from tagging import bitmaps, segment_facts
from tagging.models import Dimension, Tag, TagAssignment
from tagging.names import name_key


class SegmentError(ValueError):
    """A mistake in an expression; ``position`` is 1-based, ``str()`` is for people."""

    def __init__(self, message: str, position: int | None = None):
        self.message, self.position = message, position
        super().__init__(message if position is None else f"{message} (at {position})")


# --- Fields -------------------------------------------------------------------

NUMBER, DATE, TEXT, AGE = "number", "date", "text", "age"


@dataclass(frozen=True)
class FieldSpec:
    column: str
    kind: str
    choices: tuple[str, ...] = ()
    fold: str = ""  # "upper" or "lower": how stored values are written
    q: Callable[[str, Decimal, datetime], Q] | None = None  # computed fact (segment_facts)


FIELDS: dict[str, FieldSpec] = {
    "purchases": FieldSpec("purchase_count", NUMBER),
    "total_spent": FieldSpec("total_spent", NUMBER),
    "first_purchase": FieldSpec("first_purchase_at", DATE),
    "last_purchase": FieldSpec("last_purchase_at", DATE),
    "last_interaction": FieldSpec("last_interaction_at", DATE),
    "last_read": FieldSpec("last_read_at", DATE),
    "last_reply": FieldSpec("last_reply_at", DATE),
    "created": FieldSpec("created_at", DATE),
    "birth_date": FieldSpec("birth_date", DATE),
    "age": FieldSpec("birth_date", AGE),
    "gender": FieldSpec("gender", TEXT, ("f", "m", "d", ""), fold="lower"),
    "country": FieldSpec("country", TEXT, fold="upper"),
    "language": FieldSpec("language", TEXT, fold="lower"),
    "city": FieldSpec("city", TEXT),
    "consent": FieldSpec("consent_status", TEXT, tuple(ConsentStatus.values), fold="lower"),
    "blocked": FieldSpec("is_blocked", TEXT, ("true", "false"), fold="lower"),
    # rules (issue 6): computed facts, see tagging/segment_facts.py
    "reads_per_week": FieldSpec("", NUMBER, q=segment_facts.reads_per_week_q),
    "birthday_in": FieldSpec("birth_date", NUMBER, q=segment_facts.birthday_in_q),
}

_OPS = {"=": "exact", "!=": "exact", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}

# --- Tokens ---------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"?)
  | (?P<duration>\d+[hdwHDW]\b)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op>!=|>=|<=|=|>|<)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<other>.)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "within"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int  # 1-based

    @property
    def keyword(self) -> str:
        return self.text.lower() if self.kind == "word" and self.text.lower() in _KEYWORDS else ""


def tokenize(text: str) -> list[Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        kind, value, pos = match.lastgroup, match.group(), match.start() + 1
        if kind == "space":
            continue
        if kind == "other":
            raise SegmentError(_("unexpected character “%(c)s”") % {"c": value}, pos)
        if kind == "string":
            if len(value) < 2 or not value.endswith('"') or value.endswith('\\"'):
                raise SegmentError(_("unterminated quote; close the tag name with \""), pos)
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append(Token(kind, value, pos))
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


# --- Syntax tree ----------------------------------------------------------------


@dataclass(frozen=True)
class TagRef:
    text: str
    pos: int
    tag_ids: tuple[int, ...] = ()
    dimension_id: int | None = None


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: object
    pos: int


@dataclass(frozen=True)
class Within:
    field: str
    delta: timedelta
    pos: int


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Node, ...] = field(default_factory=tuple)


Node = TagRef | Condition | Within | Not | BoolOp


class _Parser:
    def __init__(self, text: str, vocabulary: _Vocabulary):
        self.tokens = tokenize(text)
        self.i = 0
        self.vocabulary = vocabulary

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise SegmentError(_("the expression is empty"), 1)
        node = self.expr()
        if self.token.kind != "end":
            raise SegmentError(
                _("expected AND, OR or the end, found “%(t)s”") % {"t": self.token.text},
                self.token.pos,
            )
        return node

    def expr(self) -> Node:
        items = [self.term()]
        while self.token.keyword == "or":
            self.take()
            items.append(self.term())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def term(self) -> Node:
        items = [self.factor()]
        while self.token.keyword == "and":
            self.take()
            items.append(self.factor())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def factor(self) -> Node:
        token = self.token
        if token.keyword == "not":
            self.take()
            return Not(self.factor())
        if token.kind == "lparen":
            self.take()
            node = self.expr()
            if self.token.kind != "rparen":
                raise SegmentError(
                    _("expected “)” to close the bracket opened at %(p)s") % {"p": token.pos},
                    self.token.pos,
                )
            self.take()
            return node
        if token.kind == "string":
            self.take()
            return self.vocabulary.resolve(token)
        if token.kind == "word" and not token.keyword:
            return self.condition()
        if token.kind == "end":
            raise SegmentError(_("the expression ends too early; expected a tag or a condition"),
                               token.pos)
        raise SegmentError(
            _("expected a tag in quotes, a field or “(”, found “%(t)s”") % {"t": token.text},
            token.pos,
        )

    def condition(self) -> Node:
        name_token = self.take()
        name = name_token.text.lower()
        spec = FIELDS.get(name)
        if spec is None:
            raise SegmentError(
                _("unknown field “%(f)s”%(hint)s")
                % {"f": name_token.text, "hint": _did_you_mean(name, FIELDS)},
                name_token.pos,
            )
        if self.token.keyword == "within":
            self.take()
            return self.within(name, spec, name_token)
        op = self.take()
        if op.kind != "op":
            raise SegmentError(
                _("expected a comparison (=, !=, >, >=, <, <=) or “within” after %(f)s")
                % {"f": name},
                op.pos,
            )
        value = self.take()
        return Condition(name, op.text, _value(spec, name, op, value), name_token.pos)

    def within(self, name: str, spec: FieldSpec, name_token: Token) -> Node:
        token = self.take()
        if spec.kind != DATE:
            raise SegmentError(_("“within” works only on dates; %(f)s is not one") % {"f": name},
                               name_token.pos)
        if token.kind != "duration":
            raise SegmentError(
                _("expected a duration such as 30d, 12h or 2w after “within”"), token.pos
            )
        amount, unit = int(token.text[:-1]), _UNITS[token.text[-1].lower()]
        return Within(name, timedelta(**{unit: amount}), name_token.pos)


def _value(spec: FieldSpec, name: str, op: Token, token: Token) -> object:
    if spec.kind in (NUMBER, AGE):
        if token.kind != "number":
            raise SegmentError(_("%(f)s compares with a number") % {"f": name}, token.pos)
        try:
            return Decimal(token.text) if spec.kind == NUMBER else int(Decimal(token.text))
        except InvalidOperation:
            message = _("“%(v)s” is not a number") % {"v": token.text}
            raise SegmentError(message, token.pos) from None
    if spec.kind == DATE:
        parsed = None
        if token.kind == "string":
            parsed = parse_date(token.text) or parse_datetime(token.text)
        if parsed is None:
            raise SegmentError(
                _("%(f)s compares with a date in quotes such as \"2025-01-31\", or use "
                  "“within 30d”") % {"f": name},
                token.pos,
            )
        return parsed
    if op.text not in ("=", "!="):
        raise SegmentError(_("%(f)s is text; compare it with = or !=") % {"f": name}, op.pos)
    if token.kind not in ("string", "word", "number"):
        raise SegmentError(_("expected a value in quotes after %(f)s") % {"f": name}, token.pos)
    value = token.text.lower() if spec.fold == "lower" else token.text
    value = value.upper() if spec.fold == "upper" else value
    if spec.choices and value not in spec.choices:
        raise SegmentError(
            _("%(f)s is one of %(c)s, not “%(v)s”")
            % {"f": name, "c": ", ".join(f'"{c}"' for c in spec.choices if c), "v": token.text},
            token.pos,
        )
    return value


def _did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return " — " + _("did you mean %(names)s?") % {"names": " or ".join(f"“{c}”" for c in close)}


class _Vocabulary:
    """Tag and dimension names, loaded once per parse (archived tags included)."""

    def __init__(self):
        self.tags: dict[str, list[tuple[int, int, str]]] = {}
        self.dimensions: dict[str, tuple[int, str]] = {}
        for pk, dim_id, name, key in Tag.objects.values_list("pk", "dimension_id", "name",
                                                             "name_key"):
            self.tags.setdefault(key, []).append((pk, dim_id, name))
        for pk, name, key in Dimension.objects.values_list("pk", "name", "name_key"):
            self.dimensions[key] = (pk, name)

    def resolve(self, token: Token) -> TagRef:
        text = token.text.strip()
        found = self.tags.get(name_key(text))
        if found:
            return TagRef(text, token.pos, tuple(pk for pk, _dim, _name in found))
        if "/" in text:
            dim_text, _slash, tag_text = text.partition("/")
            dimension = self.dimensions.get(name_key(dim_text))
            if dimension is None:
                names = [name for _pk, name in self.dimensions.values()]
                raise SegmentError(
                    _("unknown dimension “%(d)s”%(hint)s")
                    % {"d": dim_text, "hint": _did_you_mean(dim_text, names)},
                    token.pos,
                )
            if tag_text.strip() == "*":
                return TagRef(text, token.pos, dimension_id=dimension[0])
            found = [t for t in self.tags.get(name_key(tag_text), []) if t[1] == dimension[0]]
            if found:
                return TagRef(text, token.pos, (found[0][0],))
            names = [n for entries in self.tags.values() for _pk, dim, n in entries
                     if dim == dimension[0]]
            raise SegmentError(
                _("unknown tag “%(t)s” in dimension “%(d)s”%(hint)s")
                % {"t": tag_text, "d": dimension[1], "hint": _did_you_mean(tag_text, names)},
                token.pos,
            )
        names = [n for entries in self.tags.values() for _pk, _dim, n in entries]
        raise SegmentError(
            _("unknown tag “%(t)s”%(hint)s") % {"t": text, "hint": _did_you_mean(text, names)},
            token.pos,
        )


def parse(text: str) -> Node:
    """Parse ``text`` into a syntax tree with tags resolved; raise ``SegmentError``."""
    return _Parser(text or "", _Vocabulary()).parse()


# --- Compilation -----------------------------------------------------------------


def to_q(node: Node, now: datetime | None = None) -> Q:
    """Compile a syntax tree to a ``Q`` on ``Contact``: one ``EXISTS`` per tag.

    This is the reference the bitmap counts (``count_matching``) are tested
    against, and what lists, rules and campaigns filter with.
    """
    return _compile(node, now or timezone.now(), {})


def _compile(node: Node, now: datetime, dims: dict[int, list[int]]) -> Q:
    if isinstance(node, BoolOp):
        combined = Q()
        for item in node.items:
            q = _compile(item, now, dims)
            combined = (combined & q) if node.op == "and" else (combined | q)
        return combined
    if isinstance(node, Not):
        return ~_compile(node.item, now, dims)
    if isinstance(node, TagRef):
        held = TagAssignment.objects.filter(contact_id=OuterRef("pk"))
        if node.dimension_id is not None:
            held = held.filter(tag__dimension_id=node.dimension_id)
        else:
            held = held.filter(tag_id__in=node.tag_ids)
        return Q(Exists(held))
    if isinstance(node, Within):
        return Q(**{f"{FIELDS[node.field].column}__gte": now - node.delta})
    return _condition_q(node, now)


def _tag_ids(node: TagRef, dims: dict[int, list[int]]) -> list[int]:
    if node.dimension_id is None:
        return list(node.tag_ids)
    if node.dimension_id not in dims:
        dims[node.dimension_id] = list(
            Tag.objects.filter(dimension_id=node.dimension_id).values_list("pk", flat=True)
        )
    return dims[node.dimension_id]


def _condition_q(node: Condition, now: datetime) -> Q:
    spec = FIELDS[node.field]
    if spec.q is not None:
        return spec.q(node.op, node.value, now)
    if spec.kind == AGE:
        q = _age_q(node.op, int(node.value), now.date())
        return q
    value = node.value
    if node.field == "blocked":
        value = value == "true"
    elif (spec.kind == DATE and spec.column.endswith("_at") and isinstance(value, date)
          and not isinstance(value, datetime)):
        value = timezone.make_aware(datetime.combine(value, datetime.min.time()))
    q = Q(**{f"{spec.column}__{_OPS[node.op]}": value})
    return ~q if node.op == "!=" else q


def _years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def _age_q(op: str, years: int, today: date) -> Q:
    def at_least(n: int) -> Q:
        return Q(birth_date__lte=_years_ago(today, n))

    def at_most(n: int) -> Q:
        return Q(birth_date__gt=_years_ago(today, n + 1))

    known = Q(birth_date__isnull=False)
    return {
        ">=": at_least(years),
        ">": at_least(years + 1),
        "<=": at_most(years),
        "<": at_most(years - 1),
        "=": at_least(years) & at_most(years),
        "!=": known & ~(at_least(years) & at_most(years)),
    }[op]


def contacts_matching(expression: str, queryset: QuerySet[Contact] | None = None,
                      now: datetime | None = None) -> QuerySet[Contact]:
    """Contacts matching ``expression`` (one SQL query); raise ``SegmentError`` when invalid."""
    queryset = Contact.objects.all() if queryset is None else queryset
    return queryset.filter(to_q(parse(expression), now))


def count_matching(expression: str, now: datetime | None = None, *,
                   fast: bool = True) -> int:
    """Number of contacts matching ``expression``.

    Tags are counted on the process's bitmaps (``tagging.bitmaps``) where they
    can answer; field conditions stay in SQL, joined to the tag part by the
    smaller of its set and its complement. ``fast=False`` is plain SQL.
    """
    node = parse(expression)
    now = now or timezone.now()
    if fast and bitmaps.usable():
        counted = _count_fast(node, now)
        if counted is not None:
            return counted
    return Contact.objects.filter(to_q(node, now)).count()


def ids_matching(expression: str, now: datetime | None = None) -> list[int]:
    """Ids of the contacts matching ``expression``, ascending (bitmaps when they can answer)."""
    node = parse(expression)
    if bitmaps.usable():
        found = _bitmap(node, bitmaps.current(), {})
        if found is not None:
            return list(found)
    return list(Contact.objects.filter(to_q(node, now)).order_by("pk")
                .values_list("pk", flat=True))


def _count_fast(node: Node, now: datetime) -> int | None:
    index, dims = bitmaps.current(), {}
    whole = _bitmap(node, index, dims)
    if whole is not None:
        return len(whole)
    if not isinstance(node, BoolOp):
        return None
    tag_items = [i for i in node.items if _tags_only(i)]
    fact_items = [i for i in node.items if not _tags_only(i)]
    if not tag_items:
        return None
    tags = _bitmap(BoolOp(node.op, tuple(tag_items)), index, dims)
    others = index.contacts - tags
    facts = Contact.objects.filter(_compile(BoolOp(node.op, tuple(fact_items)), now, dims))
    if node.op == "and":  # F ∧ T
        if len(tags) <= len(others):
            return facts.filter(_id_in(tags)).count()
        return facts.count() - facts.filter(_id_in(others)).count()
    # F ∨ T = T + (F ∧ ¬T)
    if len(others) <= len(tags):
        return len(tags) + facts.filter(_id_in(others)).count()
    return len(tags) + facts.count() - facts.filter(_id_in(tags)).count()


def _id_in(ids) -> Q:
    """``id IN (…)`` for many ids as one array parameter (PostgreSQL hashes it)."""
    return Q(pk__in=RawSQL("SELECT unnest(%s::bigint[])", [list(ids)]))


def _bitmap(node: Node, index: bitmaps.TagBitmaps, dims: dict[int, list[int]]) -> BitMap | None:
    """The contacts a tag-only expression selects; ``None`` when it tests a field."""
    if isinstance(node, TagRef):
        return index.any_of(_tag_ids(node, dims))
    if isinstance(node, Not):
        inner = _bitmap(node.item, index, dims)
        return None if inner is None else index.contacts - inner
    if isinstance(node, BoolOp):
        parts = [_bitmap(i, index, dims) for i in node.items]
        if any(p is None for p in parts):
            return None
        return BitMap.intersection(*parts) if node.op == "and" else BitMap.union(*parts)
    return None


def _tags_only(node: Node) -> bool:
    if isinstance(node, BoolOp):
        return all(_tags_only(i) for i in node.items)
    if isinstance(node, Not):
        return _tags_only(node.item)
    return isinstance(node, TagRef)


def referenced_tag_ids(node: Node) -> set[int]:
    """Tag ids an expression names directly (dimension wildcards excluded)."""
    if isinstance(node, BoolOp):
        return set().union(*(referenced_tag_ids(i) for i in node.items))
    if isinstance(node, Not):
        return referenced_tag_ids(node.item)
    if isinstance(node, TagRef):
        return set(node.tag_ids)
    return set()
