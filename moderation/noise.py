"""Training-time noise: copies of comments typed the way readers type on a phone.

The written data is tidier than real comments. A copy with accents and capitals gone, SMS
spelling, a typo or two, a stretched letter and no punctuation teaches the model that such
a comment means what the tidy one means: it learns words, not typography.
"""

import hashlib
import random
import re
import unicodedata

# Common French SMS spellings, applied to whole words (lower case, accents already stripped).
SMS = {
    "c'est": "c", "cest": "c", "qu'il": "kil", "que": "ke", "qui": "ki", "quoi": "koi", "quand": "kan",
    "pourquoi": "pk", "parce": "paske", "beaucoup": "bcp", "toujours": "tjrs", "jamais": "jms", "vous": "vs",
    "nous": "ns", "tout": "tt", "tous": "ts", "avec": "avc", "pour": "pr", "dans": "ds", "meme": "mm",
    "bien": "bi1", "rien": "ri1", "moi": "mwa", "toi": "twa", "suis": "sui", "trop": "tro", "aussi": "ossi",
    "les": "lé", "des": "dé", "est": "é", "mais": "mé", "comme": "com", "quelque": "qlq", "maintenant": "mnt",
    "you": "u", "are": "r", "your": "ur", "to": "2", "for": "4", "people": "ppl", "because": "bc", "please": "pls",
}
_WORD = re.compile(r"[\w']+")
_LETTER_RUN = re.compile(r"[^\W\d_]{4,}")
_PUNCTUATION = re.compile(r"[^\w\s@#]")
SMS_SHARE = 0.3
TYPO_SHARE = 0.06


def _strip_accents(text: str) -> str:
    """Letters without their accents ("élève" -> "eleve"), as typed on a keyboard without them."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _typo(word: str, chance: random.Random) -> str:
    """One slip in a word: a letter dropped, doubled or swapped with the next."""
    position = chance.randrange(1, len(word) - 1)
    kind = chance.choice(("drop", "double", "swap"))
    if kind == "drop":
        return word[:position] + word[position + 1:]
    if kind == "double":
        return word[:position] + word[position] + word[position:]
    return word[:position] + word[position + 1] + word[position] + word[position + 2:]


def noisy(text: str, key: str = "") -> str:
    """A phone-typed copy of a comment; the same text and key give the same copy on every run."""
    chance = random.Random(hashlib.sha256(f"noise:{key}:{text}".encode("utf-8", "surrogatepass")).digest())
    copy = _strip_accents(text).replace("\u2019", "'").lower()
    copy = _WORD.sub(lambda m: SMS.get(m.group(), m.group()) if chance.random() < SMS_SHARE else m.group(), copy)
    copy = _LETTER_RUN.sub(lambda m: _typo(m.group(), chance) if chance.random() < TYPO_SHARE else m.group(), copy)
    words = _PUNCTUATION.sub(" ", copy.replace("'", "")).split()
    if words:
        stretched = chance.randrange(len(words))
        words[stretched] += words[stretched][-1] * chance.randint(2, 4)
    return " ".join(words)
