"""Comment text cut into pieces for display: plain, highlighted by the explanation, or an invisible character made visible.

Moderators must see exactly what a reader wrote. Format characters (zero-width spaces, bidi
overrides, soft hyphens) are shown as labelled badges: they would otherwise hide obfuscation
or reorder the text on screen.
"""

import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    """A run of text with the labels whose explanation covers it, or one invisible character."""

    text: str
    labels: tuple[str, ...] = ()
    terms: tuple[tuple[str, str, float], ...] = ()
    invisible: str = ""


def pieces(text: str, explanation: dict | None, limit: int | None = None) -> tuple[list[Piece], int]:
    """The text as display pieces, cut at `limit` characters; also how many characters were cut."""
    shown = text if limit is None else text[:limit]
    marks: dict[int, list[tuple[str, str, float]]] = {}
    for label, terms in (explanation or {}).items():
        for term in terms:
            note = (label, term["term"], term["weight"])
            for start, end in term.get("spans", []):
                for position in range(max(start, 0), min(end, len(shown))):
                    marks.setdefault(position, []).append(note)
    result: list[Piece] = []
    run_start = 0
    for position in range(len(shown) + 1):
        at_end = position == len(shown)
        invisible = not at_end and unicodedata.category(shown[position]) == "Cf"
        if at_end or invisible or (position > run_start and _key(marks, position) != _key(marks, run_start)):
            if position > run_start:
                result.append(_piece(shown[run_start:position], marks.get(run_start, [])))
            run_start = position
        if invisible:
            result.append(Piece(shown[position], invisible=f"U+{ord(shown[position]):04X} {unicodedata.name(shown[position], '')}".strip()))
            run_start = position + 1
    return result, len(text) - len(shown)


def _key(marks: dict, position: int) -> tuple:
    """What decides whether two characters belong to one piece."""
    return tuple(marks.get(position, ()))


def _piece(text: str, notes: list[tuple[str, str, float]]) -> Piece:
    """One run of text and the explanation terms (label, term, weight) over it."""
    return Piece(text, tuple(sorted({label for label, _, _ in notes})), tuple(dict.fromkeys(notes)))
