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
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

import numpy as np
from django.db.models import BooleanField, Exists, Expression, OuterRef, Q, QuerySet
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
    """Tag and dimension names, loaded once per parse at the first tag (archived included)."""

    def __init__(self):
        self.loaded = False

    def load(self) -> None:
        self.tags: dict[str, list[tuple[int, int, str]]] = {}
        self.dimensions: dict[str, tuple[int, str]] = {}
        self.loaded = True
        for pk, dim_id, name, key in Tag.objects.values_list("pk", "dimension_id", "name",
                                                             "name_key"):
            self.tags.setdefault(key, []).append((pk, dim_id, name))
        for pk, name, key in Dimension.objects.values_list("pk", "name", "name_key"):
            self.dimensions[key] = (pk, name)

    def resolve(self, token: Token) -> TagRef:
        if not self.loaded:
            self.load()
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


def parse(text: str, vocabulary: _Vocabulary | None = None) -> Node:
    """Parse ``text`` into a syntax tree with tags resolved; raise ``SegmentError``."""
    return _Parser(text or "", vocabulary or _Vocabulary()).parse()


def expressions_naming(tag: Tag, expressions) -> int:
    """How many of ``expressions`` name ``tag`` (or its dimension's ``"Dimension/*"``).

    For the delete confirmation: expressions that no longer parse are not counted.
    """
    vocabulary, count = _Vocabulary(), 0
    for text in expressions:
        try:
            node = parse(text, vocabulary)
        except SegmentError:
            continue
        count += _names(node, tag)
    return count


def _names(node: Node, tag: Tag) -> bool:
    if isinstance(node, BoolOp):
        return any(_names(i, tag) for i in node.items)
    if isinstance(node, Not):
        return _names(node.item, tag)
    return isinstance(node, TagRef) and (
        tag.pk in node.tag_ids or node.dimension_id == tag.dimension_id)


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

    Answered from the process's index (``tagging.bitmaps``: tag bitmaps and
    contact columns) where it can; a field it does not hold (``total_spent``,
    computed facts) stays in SQL, joined to the rest through the smaller of a
    set and its complement. ``fast=False`` is plain SQL.
    """
    node = parse(expression)
    now = now or timezone.now()
    if fast and bitmaps.usable():
        counted = _count_fast(node, now)
        if counted is not None:
            return counted
    return Contact.objects.filter(to_q(node, now)).count()


def ids_matching(expression: str, now: datetime | None = None) -> list[int]:
    """Ids of the contacts matching ``expression``, ascending (from the index when it can)."""
    found = bitmap_matching(expression, now)
    if found is not None:
        return list(found)
    return list(Contact.objects.filter(to_q(parse(expression), now)).order_by("pk")
                .values_list("pk", flat=True))


def bitmap_matching(expression: str, now: datetime | None = None) -> BitMap | None:
    """The matches as a new bitmap when the index can answer alone, else ``None``."""
    node = parse(expression)
    if not (bitmaps.usable() and _held(node)):
        return None
    with bitmaps.reading(_columns(node)) as index:
        return BitMap(_bitmap(node, index, {}, now or timezone.now()))


def _count_fast(node: Node, now: datetime) -> int | None:
    dims: dict[int, list[int]] = {}
    if _held(node):
        with bitmaps.reading(_columns(node)) as index:
            if _columns(node) and not _names_tags(node):  # fields only: vectorised, no bitmaps
                return int(np.count_nonzero(_mask(node, index, now)))
            return len(_bitmap(node, index, dims, now))
    if not isinstance(node, BoolOp):
        return None
    held = [i for i in node.items if _held(i)]
    rest = [i for i in node.items if not _held(i)]
    if not held:
        return None
    with bitmaps.reading(_columns(BoolOp(node.op, tuple(held)))) as index:
        part = _bitmap(BoolOp(node.op, tuple(held)), index, dims, now)
        others = index.contacts - part
    sql = Contact.objects.filter(_compile(BoolOp(node.op, tuple(rest)), now, dims))
    if node.op == "and":  # S ∧ P
        if len(part) <= len(others):
            return sql.filter(_id_in(part)).count()
        return sql.count() - sql.filter(_id_in(others)).count()
    # S ∨ P = P + (S ∧ ¬P)
    if len(others) <= len(part):
        return len(part) + sql.filter(_id_in(others)).count()
    return len(part) + sql.count() - sql.filter(_id_in(part)).count()


def _id_in(ids: BitMap) -> Q:
    return Q(_IdsIn(ids))


class _IdsIn(Expression):
    """``id = ANY('{…}')`` with the ids as one literal: the planner sees how many there are
    and probes a hash of them (a bound array parameter is guessed at ten rows and joined
    by a nested loop over the primary key)."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, ids: BitMap, alias: str | None = None):
        super().__init__(output_field=BooleanField())
        self.ids, self.alias = ids, alias

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False,
                           for_save=False):
        clone = self.copy()
        clone.alias = query.get_initial_alias()
        return clone

    def relabeled_clone(self, change_map):
        clone = self.copy()
        clone.alias = change_map.get(self.alias, self.alias)
        return clone

    def get_group_by_cols(self):
        return []

    def as_sql(self, compiler, connection):
        literal = "{" + ",".join(map(str, self.ids)) + "}"
        return f"{compiler.quote_name_unless_alias(self.alias)}.id = ANY(%s::bigint[])", [literal]


def _held(node: Node) -> bool:
    """The index can answer this node (tags, and fields it holds as columns)."""
    if isinstance(node, BoolOp):
        return all(_held(i) for i in node.items)
    if isinstance(node, Not):
        return _held(node.item)
    if isinstance(node, TagRef):
        return True
    spec = FIELDS[node.field]
    if isinstance(node, Within):
        return spec.column.endswith("_at") and spec.column in bitmaps.NUMERIC
    if spec.q is not None or spec.column not in (*bitmaps.NUMERIC, *bitmaps.TEXT):
        return False
    if spec.kind == DATE:  # a date on a time column, or a date on a date column
        return isinstance(node.value, date) and (
            spec.column.endswith("_at") or not isinstance(node.value, datetime))
    return True


def _names_tags(node: Node) -> bool:
    if isinstance(node, BoolOp):
        return any(_names_tags(i) for i in node.items)
    if isinstance(node, Not):
        return _names_tags(node.item)
    return isinstance(node, TagRef)


def _mask(node: Node, index: bitmaps.TagBitmaps, now: datetime) -> np.ndarray:
    """A field-only held expression as a mask over contact ids (existing contacts only)."""
    if isinstance(node, Not):
        return index.exists & ~_mask(node.item, index, now)
    if isinstance(node, BoolOp):
        masks = [_mask(i, index, now) for i in node.items]
        return np.logical_and.reduce(masks) if node.op == "and" else np.logical_or.reduce(masks)
    return _field_mask(node, index, now)


def _columns(node: Node) -> set[str]:
    if isinstance(node, BoolOp):
        return set().union(*(_columns(i) for i in node.items))
    if isinstance(node, Not):
        return _columns(node.item)
    return set() if isinstance(node, TagRef) else {FIELDS[node.field].column}


def _bitmap(node: Node, index: bitmaps.TagBitmaps, dims: dict[int, list[int]],
            now: datetime) -> BitMap:
    """The contacts a held expression (``_held``) selects, from the index alone."""
    if isinstance(node, TagRef):
        return index.any_of(_tag_ids(node, dims))
    if isinstance(node, Not):
        return index.contacts - _bitmap(node.item, index, dims, now)
    if isinstance(node, BoolOp):
        parts = [_bitmap(i, index, dims, now) for i in node.items]
        return BitMap.intersection(*parts) if node.op == "and" else BitMap.union(*parts)
    return _field_bitmap(node, index, now)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _days(day: date) -> int:
    return (day - _EPOCH.date()).days


def _field_bitmap(node: Condition | Within, index: bitmaps.TagBitmaps, now: datetime) -> BitMap:
    return bitmaps.to_bitmap(_field_mask(node, index, now))


_COMPARE = {"=": operator.eq, ">": operator.gt, ">=": operator.ge, "<": operator.lt,
            "<=": operator.le}


def _field_mask(node: Condition | Within, index: bitmaps.TagBitmaps, now: datetime) -> np.ndarray:
    """One field test on the index's columns, with SQL's meaning (NULL never matches a
    comparison; ``!=`` — like ``NOT`` — does match it)."""
    spec = FIELDS[node.field]
    if isinstance(node, Within):
        return index.numeric[spec.column] >= _micros(now - node.delta)
    if spec.column in bitmaps.TEXT:
        equal = index.text[spec.column].equal(node.value)
        return equal if node.op == "=" else index.exists & ~equal
    column = index.numeric[spec.column]
    if spec.kind == AGE:
        known = column != bitmaps.NULL
        today, years = now.date(), int(node.value)

        def at_least(n: int):
            return known & (column <= _days(_years_ago(today, n)))

        def at_most(n: int):
            return column > _days(_years_ago(today, n + 1))

        return {">=": lambda: at_least(years), ">": lambda: at_least(years + 1),
                "<=": lambda: at_most(years), "<": lambda: at_most(years - 1),
                "=": lambda: at_least(years) & at_most(years),
                "!=": lambda: known & ~(at_least(years) & at_most(years))}[node.op]()
    value = node.value
    if node.field == "blocked":
        value = int(value == "true")
    elif spec.kind == DATE:
        if spec.column.endswith("_at"):
            if not isinstance(value, datetime):
                value = datetime.combine(value, datetime.min.time())
            value = _micros(value)
        else:
            value = _days(value)
    elif isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if node.op == "!=":
        return index.exists & (column != value)
    mask = _COMPARE[node.op](column, value)  # only the one comparison asked for
    return mask & (column != bitmaps.NULL) if node.op in ("<", "<=") else mask  # NULL is min


def referenced_tag_ids(node: Node) -> set[int]:
    """Tag ids an expression names directly (dimension wildcards excluded)."""
    if isinstance(node, BoolOp):
        return set().union(*(referenced_tag_ids(i) for i in node.items))
    if isinstance(node, Not):
        return referenced_tag_ids(node.item)
    if isinstance(node, TagRef):
        return set(node.tag_ids)
    return set()
