"""The segment expression language: one way to say “which contacts”.

    ("VIP" OR "SVIP") AND NOT "Drohender Abwanderer"
    "Kaufkraft/*" AND purchases > 3 AND last_interaction within 30d

Grammar (keywords and tag names are case-insensitive; ``--`` starts a comment)::

    expr       := term ("OR" term)*
    term       := factor ("AND" factor)*
    factor     := "NOT"* ( "(" expr ")" | tag | condition )
    tag        := STRING          -- "Name", "Dimension/Name" or "Dimension/*"
    condition  := FIELD OP value | FIELD "within" DURATION
    OP         := "=" | "!=" | ">" | ">=" | "<" | "<="
    DURATION   := NUMBER ("h" | "d" | "w")

A small hand-written recursive-descent parser rather than a parser library:
the grammar has eleven tokens, and owning the tokenizer lets every error name
its exact position and the nearest valid names. This module is the language
(tokens, syntax tree, parser, errors); ``sql`` compiles a tree to SQL,
``evaluation`` answers it from the in-memory index, and ``selectors`` picks one.

Keywords have German and Chinese twins (UND/ODER/NICHT/INNERHALB, 且/或/非), so a
team writes expressions in its own language.

Hostile input ends in a ``SegmentError``, never in a crash further down: the text is
limited in length (``MAX_LENGTH``), in nesting (``MAX_DEPTH`` brackets inside each
other) and in conditions (``MAX_TERMS``: SQLite refuses an expression tree deeper
than 1,000, and PostgreSQL takes 0.8 s to plan 200 ``EXISTS``); numbers, dates and
durations are range-checked here, where the position is known, instead of overflowing in
``timedelta``, ``date.replace`` or the database. AND/OR chains are n-ary nodes built by a
loop, without repeats, and runs of NOT collapse, so a long chain costs no recursion.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db.models import Q
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from crm.models import ConsentStatus
from tagging.audiences import facts
from tagging.models import Dimension, Tag
from tagging.names import INVISIBLE, name_key


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
    q: Callable[[str, Decimal, datetime], Q] | None = None  # computed fact (facts.py)


FIELDS: dict[str, FieldSpec] = {
    "purchases": FieldSpec("purchase_count", NUMBER),
    "total_spent": FieldSpec("total_spent", NUMBER),
    "first_purchase": FieldSpec("first_purchase_at", DATE),
    "last_purchase": FieldSpec("last_purchase_at", DATE),
    "last_interaction": FieldSpec("last_interaction_at", DATE),
    "last_read": FieldSpec("last_read_at", DATE),
    "last_reply": FieldSpec("last_reply_at", DATE),
    "created": FieldSpec("created_at", DATE),
    "joined": FieldSpec("joined_at", DATE),
    "birth_date": FieldSpec("birth_date", DATE),
    "age": FieldSpec("birth_date", AGE),
    "gender": FieldSpec("gender", TEXT, ("f", "m", "d", ""), fold="lower"),
    "country": FieldSpec("country", TEXT, fold="upper"),
    "language": FieldSpec("language", TEXT, fold="lower"),
    "city": FieldSpec("city", TEXT),
    "consent": FieldSpec("consent_status", TEXT, tuple(ConsentStatus.values), fold="lower"),
    "blocked": FieldSpec("is_blocked", TEXT, ("true", "false"), fold="lower"),
    # Computed facts (facts.py).
    "reads_per_week": FieldSpec("", NUMBER, q=facts.reads_per_week_q),
    "birthday_in": FieldSpec("birth_date", NUMBER, q=facts.birthday_in_q),
}

_UNITS = {"h": "hours", "d": "days", "w": "weeks"}

# Limits (see the module docstring). 10,000 characters is also the API's limit for
# ``where``; 32 levels and 100 conditions are far beyond what a person writes.
MAX_LENGTH = 10_000
MAX_DEPTH = 32
MAX_TERMS = 100
# Ranges a value must fall in: beyond them it is a typo, and it would overflow Python's
# dates or the database's numbers.
MAX_NUMBER = Decimal(10) ** 12
MAX_AGE = 150
MAX_WITHIN = timedelta(days=36_500)
FIRST_YEAR, LAST_YEAR = 1800, 2999

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
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*|[且或非])
  | (?P<other>.)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and": "and", "or": "or", "not": "not", "within": "within",
             "und": "and", "oder": "or", "nicht": "not", "innerhalb": "within",
             "且": "and", "或": "or", "非": "not"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int  # 1-based

    @property
    def keyword(self) -> str:
        return _KEYWORDS.get(self.text.lower(), "") if self.kind == "word" else ""


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise SegmentError(
            _("The expression is too long (%(n)s characters; at most %(max)s). Shorten it, "
              "for example with a dimension such as \"Dimension/*\" instead of each of its "
              "tags.") % {"n": f"{len(text):,}", "max": f"{MAX_LENGTH:,}"})
    bad = INVISIBLE.search(text)
    if bad:
        raise SegmentError(_("The expression contains an invisible control character or an "
                             "invalid character; remove it."), bad.start() + 1)
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
        self.depth = self.terms = 0

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
        return _bool("or", items)

    def term(self) -> Node:
        items = [self.factor()]
        while self.token.keyword == "and":
            self.take()
            items.append(self.factor())
        return _bool("and", items)

    def factor(self) -> Node:
        # A run of NOTs is read by a loop and collapses: NOT NOT x is x.
        negated = False
        while self.token.keyword == "not":
            self.take()
            negated = not negated
        node = self.operand()
        return Not(node) if negated else node

    def operand(self) -> Node:
        token = self.token
        if token.kind == "lparen":
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise SegmentError(
                    _("The expression is too deeply nested (more than %(max)s brackets inside "
                      "each other). Remove brackets that are not needed.") % {"max": MAX_DEPTH},
                    token.pos)
            node = self.expr()
            if self.token.kind != "rparen":
                raise SegmentError(
                    _("expected “)” to close the bracket opened at %(p)s") % {"p": token.pos},
                    self.token.pos,
                )
            self.take()
            self.depth -= 1
            return node
        if token.kind in ("string", "word") and not token.keyword:
            self.terms += 1
            if self.terms > MAX_TERMS:
                raise SegmentError(
                    _("The expression names too many tags and conditions (more than %(max)s). "
                      "Shorten it, for example with a dimension such as \"Dimension/*\" "
                      "instead of each of its tags.") % {"max": MAX_TERMS},
                    token.pos)
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
        digits, unit = token.text[:-1], _UNITS[token.text[-1].lower()]
        # Nine digits of hours are already beyond the limit; more would not fit a timedelta.
        delta = timedelta(**{unit: int(digits)}) if len(digits) <= 9 else None
        if delta is None or delta > MAX_WITHIN:
            raise SegmentError(
                _("The duration %(d)s is too long; “within” looks back at most 100 years "
                  "(36500d).") % {"d": token.text},
                token.pos)
        return Within(name, delta, name_token.pos)


def _value(spec: FieldSpec, name: str, op: Token, token: Token) -> object:
    if spec.kind in (NUMBER, AGE):
        if token.kind != "number":
            raise SegmentError(_("%(f)s compares with a number") % {"f": name}, token.pos)
        return _number(spec, name, token)
    if spec.kind == DATE:
        parsed = None
        if token.kind == "string":
            parsed = _date(name, token)
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


def _bool(op: str, items: list[Node]) -> Node:
    """An n-ary node without repeats (``"VIP" OR "VIP"`` is ``"VIP"``): each repeat would
    cost the database one more subquery to plan."""
    seen: dict[tuple, Node] = {}
    for item in items:
        seen.setdefault(_key(item), item)
    unique = list(seen.values())
    return unique[0] if len(unique) == 1 else BoolOp(op, tuple(unique))


def _key(node: Node) -> tuple:
    """What a node means, without where it was written."""
    if isinstance(node, TagRef):
        return ("tag", node.tag_ids, node.dimension_id)
    if isinstance(node, Not):
        return ("not", _key(node.item))
    if isinstance(node, BoolOp):
        return (node.op, tuple(_key(i) for i in node.items))
    if isinstance(node, Within):
        return ("within", node.field, node.delta)
    return ("condition", node.field, node.op, str(node.value))


def _number(spec: FieldSpec, name: str, token: Token) -> Decimal | int:
    try:
        number = Decimal(token.text) if len(token.text) <= 30 else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise SegmentError(_("“%(v)s” is not a number") % {"v": token.text[:30]}, token.pos)
    if spec.kind == AGE:
        if not 0 <= number <= MAX_AGE:
            raise SegmentError(
                _("An age is between 0 and %(max)s years, not %(v)s.")
                % {"max": MAX_AGE, "v": token.text[:30]}, token.pos)
        return int(number)
    if abs(number) > MAX_NUMBER:
        raise SegmentError(
            _("%(v)s is too large for %(f)s; numbers go up to 1,000,000,000,000.")
            % {"v": token.text[:30], "f": name}, token.pos)
    return number


def _date(name: str, token: Token) -> date | None:
    """The date (or date and time) in a string token, checked to be a real day in range."""
    if len(token.text) > 40:
        return None
    try:
        parsed = parse_date(token.text) or parse_datetime(token.text)
    except ValueError:  # well-formed but impossible: 30 February, month 13, year 0
        raise SegmentError(
            _("“%(v)s” is not a real date; write it as YYYY-MM-DD, for example "
              "\"2025-01-31\".") % {"v": token.text}, token.pos) from None
    if parsed is not None and not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise SegmentError(
            _("The date “%(v)s” is out of range; use a year between %(first)s and %(last)s.")
            % {"v": token.text, "first": FIRST_YEAR, "last": LAST_YEAR}, token.pos)
    return parsed


def _did_you_mean(word: str, candidates) -> str:
    if len(word) > 100:  # no tag is named like that; comparing would only cost time
        return ""
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


def parse_all(texts: Iterable[str]) -> dict[str, Node | SegmentError]:
    """Each distinct text of ``texts`` parsed, or the ``SegmentError`` it raised: one
    vocabulary load for all of them (a list page with an expression per row)."""
    vocabulary, parsed = _Vocabulary(), {}
    for text in dict.fromkeys(texts):
        try:
            parsed[text] = parse(text, vocabulary)
        except SegmentError as exc:
            parsed[text] = exc
    return parsed


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


def referenced_tag_ids(node: Node) -> set[int]:
    """Tag ids an expression names directly (dimension wildcards excluded)."""
    if isinstance(node, BoolOp):
        return set().union(*(referenced_tag_ids(i) for i in node.items))
    if isinstance(node, Not):
        return referenced_tag_ids(node.item)
    if isinstance(node, TagRef):
        return set(node.tag_ids)
    return set()


def tags_used_by(uses) -> dict[int, datetime]:
    """``{tag_id: latest moment}`` over ``(expression, used_at)`` pairs, for insight's usage.

    One vocabulary load for all expressions, each parsed once; ``"Dimension/*"``
    counts for every tag of the dimension; expressions that no longer parse are
    skipped (they use nothing). Blank expressions and ``used_at=None`` are ignored.
    """
    vocabulary, latest = _Vocabulary(), {}
    by_dimension: dict[int, set[int]] | None = None
    for text, at in uses:
        if not text or at is None:
            continue
        try:
            node = parse(text, vocabulary)
        except SegmentError:
            continue
        ids = referenced_tag_ids(node)
        dimensions = _wildcard_dimensions(node)
        if dimensions:
            if by_dimension is None:
                by_dimension = {}
                for entries in vocabulary.tags.values():
                    for pk, dim_id, _name in entries:
                        by_dimension.setdefault(dim_id, set()).add(pk)
            for dim_id in dimensions:
                ids |= by_dimension.get(dim_id, set())
        note_use(latest, ids, at)
    return latest


def note_use(latest: dict[int, datetime], tag_ids, at: datetime | None) -> None:
    """Keep the later of ``at`` and what ``latest`` holds for each of ``tag_ids``."""
    if at is None:
        return
    for pk in tag_ids:
        if pk is not None and (pk not in latest or at > latest[pk]):
            latest[pk] = at


def _wildcard_dimensions(node: Node) -> set[int]:
    if isinstance(node, BoolOp):
        return set().union(*(_wildcard_dimensions(i) for i in node.items))
    if isinstance(node, Not):
        return _wildcard_dimensions(node.item)
    if isinstance(node, TagRef) and node.dimension_id is not None:
        return {node.dimension_id}
    return set()
