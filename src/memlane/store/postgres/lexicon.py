"""The PostgreSQL store's tokenizer, one function for memories and queries alike: case-folded
runs of letters and digits, diacritics removed (as SQLite's unicode61 tokenizer splits text,
without its Porter stemming). A query term of several tokens ("e-mail") matches as a phrase."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """`text` as the list of its tokens, in order: 'Café Zoë e-mail' -> ['cafe', 'zoe', 'e', 'mail']."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _WORD.findall(plain)


def positions(text: str) -> dict[str, list[int]]:
    """Each token of `text` with its offsets (what the postings table holds per memory)."""
    out: dict[str, list[int]] = {}
    for offset, token in enumerate(tokenize(text)):
        out.setdefault(token, []).append(offset)
    return out
