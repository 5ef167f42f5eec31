"""Tag names: one meaning, one name.

Two names are the same tag when they agree after folding case, accents,
whitespace and dashes: "Bestellt", " bestellt", "BESTELLT" and "Be-stellt".
"""

import re
import unicodedata

# NUL, other control characters and lone surrogates: no tag, field or value holds them
# (PostgreSQL refuses NUL in text; the others only hide text or break a page's markup).
INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_DASHES_AND_SPACE = re.compile(r"[\s\-\u2010-\u2015_]+")


def name_key(name: str) -> str:
    """Return the comparison key of a tag or dimension name."""
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _DASHES_AND_SPACE.sub("", text)
    return text.casefold()
