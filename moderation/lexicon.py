"""A short list of unambiguous insults and slurs, in normalised (accent-folded, lower-case) form.

A bag of words only knows the insults its training data contains. Every word of this list
adds one shared marker feature, whose weight is learnt from the insults the data does
contain, so an insult the data never showed ("subhuman", "raclure") still counts. Words
that are often literal ("rat", "chien", "singe") or untargeted ("putain", "merde") are left
out on purpose: the model weighs those from context.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

ABUSE_MARK = "x_abuse"
# A larger, looser list (LDNOOBW v2, French), vendored in data/public; its ambiguous entries are dropped per model.
LEXICON_MARK = "x_lexicon"
WORD_LIST_PATH = Path(__file__).resolve().parent.parent / "data" / "public" / "lexicons" / "ldnoobw_v2_fr.txt"
MIN_CLEAN_SEEN = 3  # an entry seen fewer times in clean comments is kept whatever its share
MIN_TOXIC_RATIO = 2.0  # otherwise it must be twice as common in toxic comments as in clean ones

_WORDS = """
con conne connard connards connasse connasses salope salopes salaud salauds pute putes
batard batards fdp ntm encule encules enculee abruti abrutis abrutie imbecile imbeciles
cretin cretins debile debiles idiot idiots idiote ordure ordures raclure raclures
merdeux fumier fumiers pede pedes tapette tapettes gouine gouines negro negros
bougnoule bougnoules youpin youpins vermine vermines pourriture pourritures
moron morons imbecile dumbass bitch bitches whore whores slut sluts bastard bastards
asshole assholes scum scumbag filth vermin subhuman subhumans retard retards faggot
faggots fag fags dyke dykes cunt cunts dickhead dickheads jackass nigger niggers wanker
""".split()
_PHRASES = (
    "sous homme", "sous hommes", "sous race", "sous races", "race inferieure", "races inferieures",
    "etres inferieurs", "etre inferieur", "fils de pute", "ta gueule", "va te faire", "nique ta",
)

WORDS = frozenset(_WORDS)
PHRASES = tuple(tuple(phrase.split()) for phrase in _PHRASES)


@dataclass(frozen=True)
class WordList:
    """Entries of a word list in normalised form: single words, and phrases as word tuples by their first word."""

    words: frozenset = frozenset()
    phrases: tuple = ()

    @cached_property
    def _phrases_by_first(self) -> dict[str, list[tuple]]:
        """The phrases by their first word: every word of every comment is looked up here."""
        by_first: dict[str, list[tuple]] = {}
        for phrase in self.phrases:
            by_first.setdefault(phrase[0], []).append(phrase)
        return by_first

    def entries(self, words: list[str]) -> list[tuple[int, str | tuple]]:
        """(index, entry) for every word that is, or starts a phrase that is, on the list."""
        found = []
        by_first = self._phrases_by_first
        listed, starting = self.words.intersection(words), by_first.keys() & set(words)
        if not listed and not starting:
            return found  # most comments: two set operations instead of two look-ups per word
        for index, word in enumerate(words):
            if word in listed:
                found.append((index, word))
            if word in starting:
                found.extend((index, phrase) for phrase in by_first[word] if tuple(words[index:index + len(phrase)]) == phrase)
        return found

    def positions(self, words: list[str]) -> list[int]:
        """Indexes of the words that are, or start a phrase that is, on the list (each once)."""
        return sorted({index for index, _ in self.entries(words)})


ABUSE = WordList(WORDS, PHRASES)
abusive_positions = ABUSE.positions


def read_word_list(path: Path, normalise: Callable[[str], str]) -> WordList:
    """A word list file (one entry a line), each entry normalised as comments are; empty when the file is absent."""
    if not path.exists():
        return WordList()
    entries = {tuple(normalise(line).split()) for line in path.read_text(encoding="utf-8").splitlines()}
    entries.discard(())
    return WordList(frozenset(entry[0] for entry in entries if len(entry) == 1),
                    tuple(sorted(entry for entry in entries if len(entry) > 1)))


def unambiguous(word_list: WordList, texts: list[str], toxic: list[float]) -> WordList:
    """The entries that mark abuse in labelled comments: one not clearly more common in toxic comments than in clean
    ones ("bonne", "faire", "putain") is dropped; one the comments rarely show is kept, as insults unseen in training
    are what the list is for."""
    seen = {0: Counter(), 1: Counter()}
    rows = Counter()
    for text, label in zip(texts, toxic):
        rows[int(label)] += 1
        seen[int(label)].update({entry for _, entry in word_list.entries(text.split())})
    def kept(entry) -> bool:
        clean = seen[0][entry]
        return clean < MIN_CLEAN_SEEN or seen[1][entry] / max(rows[1], 1) >= MIN_TOXIC_RATIO * clean / max(rows[0], 1)
    return WordList(frozenset(filter(kept, word_list.words)), tuple(filter(kept, word_list.phrases)))
