"""Normalisation of French (and English) comment text, with a map back to the original characters.

Features are computed on the normalised text; explanations must point into the text the
moderator sees, so every normalised character remembers the original span it came from.
"""

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from .lexicon import ABUSE_MARK, LEXICON_MARK, WordList, abusive_positions

URL = "xurlx"
EMAIL = "xemailx"
PHONE = "xphonex"
NUMBER = "xnumx"
PLACEHOLDERS = frozenset({URL, EMAIL, PHONE, NUMBER})

# Possessive quantifiers and start-of-token lookbehinds keep this linear on long comments.
_SPECIAL = re.compile(
    r"(?P<email>(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)++)"
    r"|(?P<url>(?:https?://|www\.)\S++"
    r"|(?<![\w.-])(?:[\w-]++\.)++(?:com|net|org|fr|ci|sn|ml|bf|cm|tg|bj|ne|gn|io|me|info|biz|xyz"
    r"|bet|example|ly|co|app|tk|online|site|top)\b(?:/\S*+)?)"
    r"|(?P<mention>(?<!\w)@\w++)"
    r"|(?P<phone>(?<![\w+])\+?\d(?:[ .-]?\d){7,}(?!\w))"
)
_DOT_WORD = re.compile(r"\.\w")
# An @mention is dropped: whom a comment answers says nothing about it, and "@Awa merci" is
# everyday politeness (a placeholder learnt a toxic weight from harassment aimed at commenters).
_PLACEHOLDER = {"email": EMAIL, "url": URL, "mention": "", "phone": PHONE}

# Filler that obfuscators put inside a word ("enc*lé", "co_nnard", "id^iot").
_INNER_JUNK = re.compile(r"(?<=[^\W\d_])[*_^~`|]+(?=[^\W\d_])")
_JUNK_CHAR = re.compile(r"[*_^~`|]")
# Digits and symbols standing for letters between letters ("c0nn4rd", "s@lope", "ch!en").
_LEET = re.compile(r"(?<=[^\W\d_])[013457@$!]+(?=[^\W\d_])")
_LEET_CHAR = re.compile(r"[013457@$!]")
_LEET_MAP = str.maketrans("013457@$!", "oieastasi")
# Three or more single letters split by spaces or punctuation ("s a l o p e", "p.u.t.e").
_SPACED = re.compile(r"(?<!\w)[^\W\d_](?:[ .\-_*+|/]{1,2}[^\W\d_]){2,}(?!\w)")
_SPACED_SEPARATORS = re.compile(r"[ .\-_*+|/]")
_NUMBER = re.compile(r"(?<![^\W_])\d++(?![^\W\d_])")
_DIGIT = re.compile(r"\d")
_REPEAT = re.compile(r"(.)\1{2,}")
_NOT_WORD = re.compile(r"[^\w\s]")
_SPACES = re.compile(r" {2,}")
_CHUNK = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Normalised:
    """Normalised text plus, per character, the [start, end) span it covers in the original."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original-text span of the normalised slice [start, end)."""
        return self.starts[start], max(self.ends[start:end])


@lru_cache(maxsize=65536)
def _fold_char(char: str) -> str:
    """NFKC, case-fold and strip accents from one character; drop invisible ones."""
    category = unicodedata.category(char)
    if category in ("Cs", "Cf", "Co", "Cn", "Mn", "Me"):
        return ""
    if category[0] == "C" or category[0] == "Z":
        return " "
    folded = unicodedata.normalize("NFKC", char).casefold()
    stripped = "".join(
        c for c in unicodedata.normalize("NFD", folded) if unicodedata.category(c) not in ("Mn", "Me")
    )
    return "".join(_symbol_or_letter(c) for c in stripped)


def _symbol_or_letter(char: str) -> str:
    """Keep emoji and pictographs as words of their own; letters, digits and punctuation as they are."""
    if unicodedata.category(char) == "So":
        return f" {char} "
    return char


class _Builder:
    """Accumulates normalised characters and their original spans."""

    __slots__ = ("chars", "starts", "ends", "_text")

    def __init__(self):
        self.chars: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self._text: str | None = None

    def text(self) -> str:
        """The characters as one string, joined once: builders are not changed after they are read."""
        if self._text is None:
            self._text = "".join(self.chars)
        return self._text

    def add(self, text: str, start: int, end: int) -> None:
        """Append text that stands for the original span [start, end)."""
        for char in text:
            self.chars.append(char)
            self.starts.append(start)
            self.ends.append(end)

    def add_folded(self, original: str, start: int, end: int) -> None:
        """Append the folded form of original[start:end], one original character at a time."""
        segment = original[start:end]
        if segment.isascii() and segment.isprintable():  # most comments: folding printable ASCII is lower-casing
            folded = segment.lower()
        else:
            folded = [_fold_char(char) for char in segment]
            if not all(len(text) == 1 for text in folded):
                for index, text in enumerate(folded, start):
                    self.add(text, index, index + 1)
                return
        self.chars.extend(folded)
        self.starts.extend(range(start, end))
        self.ends.extend(range(start + 1, end + 1))


def _first_pass(text: str) -> _Builder:
    """Fold every character and replace URLs, e-mails, mentions and phone numbers by placeholders."""
    out = _Builder()
    position = 0
    for match in _SPECIAL.finditer(text) if _maybe_special(text) else ():
        out.add_folded(text, position, match.start())
        placeholder = _PLACEHOLDER[match.lastgroup]
        out.add(f" {placeholder} " if placeholder else " ", match.start(), match.end())
        position = match.end()
    out.add_folded(text, position, len(text))
    return out


def _maybe_special(text: str) -> bool:
    """Whether text has an @, a /, a digit or a dot before a letter: every placeholder needs one, most comments have none."""
    return "@" in text or "/" in text or _DIGIT.search(text) is not None or _DOT_WORD.search(text) is not None


def _rewrite(current: _Builder, pattern: re.Pattern, replace, needs: re.Pattern | None = None) -> _Builder:
    """Apply replace(match_text) to every match of pattern, keeping spans; untouched if no match.

    `needs` finds a character that every match contains: a pattern that looks behind at every
    position costs several times more than that search, in the many comments without one.
    """
    joined = current.text()
    if needs is not None and not needs.search(joined):
        return current
    matches = list(pattern.finditer(joined))
    if not matches:
        return current
    replacements = [replace(match.group()) for match in matches]
    if all(len(new) == match.end() - match.start() for new, match in zip(replacements, matches)):
        return _substitute(current, matches, replacements)
    out = _Builder()
    position = 0
    for match, replacement in zip(matches, replacements):
        _copy(current, out, position, match.start())
        if len(replacement) == match.end() - match.start():
            out.chars.extend(replacement)
            out.starts.extend(current.starts[match.start():match.end()])
            out.ends.extend(current.ends[match.start():match.end()])
        elif replacement:
            out.add(replacement, current.starts[match.start()], max(current.ends[match.start():match.end()]))
        position = match.end()
    _copy(current, out, position, len(joined))
    return out


def _substitute(current: _Builder, matches, replacements) -> _Builder:
    """Same-length replacements: characters change, spans are shared unchanged."""
    out = _Builder()
    out.chars = list(current.chars)
    for match, replacement in zip(matches, replacements):
        out.chars[match.start():match.end()] = replacement
    out.starts, out.ends = current.starts, current.ends
    return out


def _copy(source: _Builder, out: _Builder, start: int, end: int) -> None:
    """Copy characters [start, end) with their spans."""
    out.chars.extend(source.chars[start:end])
    out.starts.extend(source.starts[start:end])
    out.ends.extend(source.ends[start:end])


def _squeeze(run: str) -> str:
    """Keep two of a repeated character ("loooool" -> "lool"), enough to keep French double letters."""
    return run[:2]


def _join_spaced(run: str) -> str:
    """Join single letters that were spaced out to dodge filters."""
    return _SPACED_SEPARATORS.sub("", run)


def _punctuation_to_space(char: str) -> str:
    """Punctuation separates words; emoji stay, they carry meaning ("🐒" aimed at a person)."""
    return char if unicodedata.category(char) == "So" else " "


def _collapse_spaces(run: str) -> str:
    """Runs of white space become one space."""
    return " "


def normalise(text: str) -> Normalised:
    """Normalise a comment for feature extraction, keeping where each character came from."""
    built = _first_pass(text)
    built = _rewrite(built, _INNER_JUNK, lambda run: "", _JUNK_CHAR)
    built = _rewrite(built, _LEET, lambda run: run.translate(_LEET_MAP), _LEET_CHAR)
    built = _rewrite(built, _SPACED, _join_spaced)
    built = _rewrite(built, _NOT_WORD, _punctuation_to_space)
    built = _rewrite(built, _NUMBER, lambda run: f" {NUMBER} ", _DIGIT)
    built = _rewrite(built, _REPEAT, _squeeze)
    built = _rewrite(built, _SPACES, _collapse_spaces)
    text = built.text()
    start = 1 if text[:1] == " " else 0
    end = len(text) - (1 if len(text) > start and text[-1] == " " else 0)
    return Normalised(text[start:end], tuple(built.starts[start:end]), tuple(built.ends[start:end]))


def normalise_text(text: str) -> str:
    """The normalised string alone (training and relevance need no spans)."""
    return normalise(text).text


# Words that carry grammar, not meaning: they weigh in n-grams ("les X sont des Y") but a moderator learns nothing
# from seeing them highlighted. Normalised forms (accent-folded, lower case; "ça" is "ca").
FUNCTION_WORDS = frozenset(
    "le la les l de des du d un une et ou a au aux en dans sur sous par pour avec sans chez entre vers ce cet cette ces c "
    "ca cela ceci se s qui que qu quoi dont ou quand parce puisque est es suis sommes etes sont etre ete etait etaient sera "
    "ai as avons avez ont avait fait faire "
    "ne n pas y je j me m moi tu t te toi il elle on nous vous ils elles lui leur leurs eux mon ma mes ton ta tes "
    "son sa ses notre nos votre vos si mais donc car ni comme aussi tres plus moins tout tous toute toutes meme "
    "the a an of to in on and or but if so as at by for from with about into than then there here "
    "is are was were be been being am do does did have has had will would shall should can could may might must "
    "i me my mine we us our ours you your yours he him his she her hers it its they them their theirs "
    "this that these those who whom whose which what when where why how not no all any some just very too also".split()
)
QUOTED = "q_"
NEGATED = "n_"
# "ne ... que" (only) is no negation, so "que" is no cue; "personne" also means "a person",
# a false cue the model learns to weigh.
NEGATION_CUES = frozenset(
    "ne n pas jamais aucun aucune personne rien ni nullement guere "
    "not no never nobody none nothing neither nor cannot don doesn didn isn aren wasn weren won shouldn wouldn couldn".split()
)
_CLAUSE_END = re.compile(r"[.!?;:,\n]")
_OPENING_QUOTES = "«“"
_CLOSING_QUOTES = "»”"
_QUOTE = re.compile(f'[{_OPENING_QUOTES}{_CLOSING_QUOTES}"]')


def marked_words(original: str, normalised: Normalised, word_list: WordList | None = None) -> str:
    """Marked copies of words whose setting changes what they mean, for a block of their own.

    Quoting an insult to condemn it, or denying a prejudice ("personne ne dit que les X sont
    des Y"), uses the same words as the insult itself: words inside quotation marks get a
    q_ copy and words after a negation in their clause an n_ copy, so the model can weigh
    them apart while the plain words still count. Words on the abuse list, and on the model's
    larger word list, add a shared mark per list (itself q_ or n_ when quoted or negated), so
    insults the training data lacks still count.
    """
    words = _CHUNK.findall(normalised.text)
    return " ".join(word_marks(original, normalised, words, listed_positions(words, word_list)))


def listed_positions(words: list[str], word_list: WordList | None = None) -> dict[str, list[int]]:
    """Indexes of the words on the abuse list and on the model's word list, by the mark each list adds."""
    return {ABUSE_MARK: abusive_positions(words), LEXICON_MARK: word_list.positions(words) if word_list else []}


def word_marks(original: str, normalised: Normalised, words: list[str], listed: dict[str, list[int]]) -> list[str]:
    """The marks of marked_words, from the normalised text's words and their list positions, found once by the caller."""
    settings = _settings(original, normalised, words)
    marked = []
    for word, setting in zip(words, settings):
        if setting and word not in NEGATION_CUES and word not in PLACEHOLDERS:
            marked.extend(prefix + word for prefix in (QUOTED, NEGATED) if prefix in setting)
    for mark, positions in listed.items():
        for index in positions:
            setting = settings[index]
            marked.append((QUOTED if QUOTED in setting else NEGATED if NEGATED in setting else "") + mark)
    return marked


def _settings(original: str, normalised: Normalised, words: list[str]) -> list[str]:
    """Each word's setting: q_ inside quotation marks, n_ after a negation cue in its clause, both, or neither."""
    if NEGATION_CUES.isdisjoint(words) and not _QUOTE.search(original):
        return [""] * len(words)  # most comments: nothing to walk through
    settings = []
    quoted = negated = False
    previous_end = 0
    for word, match in zip(words, _CHUNK.finditer(normalised.text)):
        start, end = normalised.span(match.start(), match.end())
        gap = original[previous_end:start]
        previous_end = end
        quoted = _quote_state(gap, quoted)
        if _CLAUSE_END.search(gap):
            negated = False
        settings.append((QUOTED if quoted else "") + (NEGATED if negated else ""))
        if word in NEGATION_CUES:
            negated = True
    return settings


def _quote_state(gap: str, quoted: bool) -> bool:
    """Whether the next word is inside quotation marks, given the characters before it."""
    for char in gap:
        if char in _OPENING_QUOTES:
            quoted = True
        elif char in _CLOSING_QUOTES:
            quoted = False
        elif char == '"':
            quoted = not quoted
    return quoted
