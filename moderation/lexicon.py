"""A short list of unambiguous insults and slurs, in normalised (accent-folded, lower-case) form.

A bag of words only knows the insults its training data contains. Every word of this list
adds one shared marker feature, whose weight is learnt from the insults the data does
contain, so an insult the data never showed ("subhuman", "raclure") still counts. Words
that are often literal ("rat", "chien", "singe") or untargeted ("putain", "merde") are left
out on purpose: the model weighs those from context.
"""

ABUSE_MARK = "x_abuse"

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


def abusive_positions(words: list[str]) -> list[int]:
    """Indexes of the words that are, or start a phrase that is, on the list."""
    hits = []
    for index, word in enumerate(words):
        if word in WORDS or any(tuple(words[index:index + len(phrase)]) == phrase for phrase in PHRASES if phrase[0] == word):
            hits.append(index)
    return hits
