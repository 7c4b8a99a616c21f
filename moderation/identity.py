"""Counterfactual copies of training comments with the identity group swapped.

Hateful comments name some groups far more often than clean ones do, so a bag of words learns
that the name itself ("Peuls", "musulmans") is toxic. Training on copies of each comment with
another group named in its place leaves the group name with no weight of its own; the insult,
the slur and the threat keep theirs (counterfactual data augmentation, Dixon et al. 2018).
"""

import hashlib
import re

GROUPS = {
    "fr": (
        "peuls", "dioulas", "mossis", "bétés", "baoulés", "sénoufos", "malinkés", "touaregs",
        "haoussas", "wolofs", "yorubas", "igbos", "dogons", "bambaras", "burkinabè", "maliens",
        "nigériens", "nigérians", "ghanéens", "guinéens", "ivoiriens", "sénégalais", "togolais",
        "béninois", "camerounais", "libanais", "chinois", "français", "russes", "américains",
        "musulmans", "chrétiens", "juifs", "catholiques", "animistes", "migrants", "réfugiés",
        "étrangers", "homosexuels", "handicapés", "albinos", "nordistes", "sudistes",
    ),
    "en": (
        "fulani", "hausa", "yoruba", "igbo", "tuareg", "nigerians", "ghanaians", "malians",
        "ivorians", "senegalese", "lebanese", "chinese", "french", "russians", "americans",
        "muslims", "christians", "jews", "catholics", "migrants", "refugees", "foreigners",
        "gays", "disabled people", "northerners", "southerners",
    ),
}
_PATTERNS = {
    language: re.compile(r"(?<!\w)(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")(?!\w)", re.IGNORECASE)
    for language, names in GROUPS.items()
}


def _pick(names: tuple[str, ...], avoid: str, key: str) -> str:
    """A stable choice of another group for one comment."""
    others = [name for name in names if name != avoid.lower()]
    return others[int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:4], "big") % len(others)]


def _same_case(replacement: str, original: str) -> str:
    """Keep the original's capitalisation ("Peuls" -> "Dioulas", "PEULS" -> "DIOULAS")."""
    if original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def _replacement(match: re.Match, names: tuple[str, ...], key: str) -> str:
    """Another group's name in place of the matched one, in the same case."""
    return _same_case(_pick(names, match.group(), f"{key}:{match.start()}"), match.group())


def swapped(text: str, copies: int = 2) -> list[str]:
    """Up to `copies` versions of text with each named group replaced by another; [] if none is named."""
    results = []
    for language, pattern in _PATTERNS.items():
        if not pattern.search(text):
            continue
        for copy in range(copies):
            results.append(pattern.sub(lambda match, copy=copy, names=GROUPS[language]: _replacement(match, names, f"{copy}:{text}"), text))
    return [result for result in dict.fromkeys(results) if result != text][:copies]
