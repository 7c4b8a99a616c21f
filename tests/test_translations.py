"""The French interface: every message translated, placeholders kept, compiled catalogue current, language choice honoured."""

import html
import io
import re

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from .conftest import ROOT, csrf_token, login

TRANSLATIONS = ROOT / "moderation" / "translations"
FRENCH_PO = TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.po"
FRENCH_MO = TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.mo"
# Any printf-style conversion, including "%%" and a lone "%" that would break formatting.
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +-]*\d*(?:\.\d+)?[a-zA-Z%]?")
# Templates insert translations as markup (Jinja's new-style gettext), so these would change the page's HTML.
MARKUP = set('<>&"')
# Wording the browser tests and the moderators' habits rely on.
REQUIRED_FRENCH = {
    "Queue": "File d'attente", "History": "Historique", "Approve": "Approuver", "Reject": "Rejeter",
    "Log out": "Se déconnecter", "toxic": "toxique", "off-topic": "hors sujet", "spam": "spam", "other": "autre",
    "QA sample": "échantillon qualité", "pre-moderated article": "article en prémodération", "flagged": "signalé",
}


def _read_po(path):
    """A .po or .pot file as a babel catalogue (French plural rules, so plural forms are counted right)."""
    with open(path, "rb") as file:
        return read_po(file, locale="fr")


@pytest.fixture(scope="module")
def french():
    """The French catalogue as committed."""
    return _read_po(FRENCH_PO)


@pytest.fixture(scope="module")
def used_messages(tmp_path_factory):
    """Every message the code and templates use today, extracted with the project's babel.cfg as the README says."""
    template = tmp_path_factory.mktemp("pot") / "messages.pot"
    CommandLineInterface().run([
        "pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg"), "-k", "_l", "-k", "lazy_gettext",
        "-o", str(template), "--no-location", "--omit-header", "--sort-output", str(ROOT),
    ])
    return _read_po(template)


def _translated(message) -> bool:
    """Whether every form of a message has a French text that is not a fuzzy guess."""
    forms = message.string if isinstance(message.string, tuple) else (message.string,)
    return bool(message.string) and all(form.strip() for form in forms) and not message.fuzzy


def _placeholders(text: str) -> set[str]:
    """The formatting placeholders of a text."""
    return set(PLACEHOLDER.findall(text))


def _english_and_french(catalogue):
    """(English texts, French texts) of each translated message, plural forms flattened."""
    for message in catalogue:
        if message.id and message.string:
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            yield ids, strings


def _compiled(catalogue):
    """What a catalogue turns into once compiled to .mo."""
    buffer = io.BytesIO()
    write_mo(buffer, catalogue)
    buffer.seek(0)
    return read_mo(buffer)


def _messages(catalogue) -> dict:
    """Message id to translation, without the header (read_mo gives plurals as lists)."""
    return {_frozen(message.id): _frozen(message.string) for message in catalogue if message.id}


def _frozen(value):
    """A plural's forms as a tuple, so they can be compared and used as keys."""
    return tuple(value) if isinstance(value, list) else value


def test_extraction_finds_every_template_and_module(used_messages):
    """A sanity check on babel.cfg: strings from shared templates, blueprint templates and Python modules are all found."""
    ids = {message.id for message in used_messages}
    assert {"Log out", "Log in to Palabre", "Keyboard shortcuts", "Thresholds", "Why the model scored it so",
            "Unknown username or wrong password.", "Username", "toxic"} <= ids
    assert ("%(count)s comment waiting", "%(count)s comments waiting") in ids


def test_every_message_in_use_has_a_french_translation(used_messages, french):
    """A new English string without French fails here, with the list of what to translate."""
    missing = [message.id for message in used_messages
               if message.id and (french.get(message.id) is None or not _translated(french.get(message.id)))]
    assert not missing, "French translation missing or fuzzy in messages.po for:\n" + "\n".join(map(repr, missing))


def test_translations_keep_the_placeholders(french):
    """A dropped or misspelt %(name)s would crash the page or lose the value the moderator needs."""
    wrong = []
    for ids, strings in _english_and_french(french):
        expected = set().union(*map(_placeholders, ids))
        wrong += [(ids[0], string) for string in strings if _placeholders(string) != expected]
    assert not wrong, "placeholders differ from the English:\n" + "\n".join(map(repr, wrong))


def test_translations_are_plain_text(french):
    """Templates print translations unescaped, so markup characters the English lacks would break the page."""
    wrong = [(ids[0], string) for ids, strings in _english_and_french(french) for string in strings
             if (set(string) & MARKUP) - set("".join(ids))]
    assert not wrong, "markup characters in French translations:\n" + "\n".join(map(repr, wrong))


def test_required_wording(french):
    """The words the browser tests and the label names depend on are exactly these."""
    assert {english: french.get(english).string for english in REQUIRED_FRENCH} == REQUIRED_FRENCH


def test_compiled_catalogue_matches_the_po_file(french):
    """The committed .mo (what the app reads) says what messages.po says: run pybabel compile after editing."""
    with open(FRENCH_MO, "rb") as file:
        committed = read_mo(file)
    expected = _compiled(french)
    assert _messages(committed) == _messages(expected)
    assert committed.plural_forms == expected.plural_forms


def _page(client, path, **headers) -> str:
    """A page's text as the browser shows it."""
    response = client.get(path, headers=headers)
    assert response.status_code == 200, path
    return html.unescape(response.get_data(as_text=True))


def _choose_language(client, code, page="/queue"):
    """Press a language button on a page."""
    response = client.post("/language", data={"language": code, "csrf_token": csrf_token(client, page)})
    assert response.status_code == 302


def test_login_page_is_french_by_default(client):
    """A browser that states no language gets French."""
    page = _page(client, "/login")
    assert '<html lang="fr">' in page
    assert "Connexion à Palabre" in page and "Nom d'utilisateur" in page and "Mot de passe" in page
    assert "Password" not in page


def test_login_page_follows_an_english_browser(client):
    """A browser asking for English gets English."""
    page = _page(client, "/login", **{"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in page
    assert "Log in to Palabre" in page and "Username" in page and "Password" in page
    assert "Mot de passe" not in page


def test_messages_from_python_code_are_french_too(client):
    """A refused login explains itself in French."""
    response = client.post("/login", data={"username": "nobody", "password": "x", "csrf_token": csrf_token(client)})
    assert "Nom d'utilisateur inconnu ou mot de passe incorrect." in html.unescape(response.get_data(as_text=True))


def test_language_chosen_before_logging_in_applies_to_the_login_page(client):
    """The switch on the login page works without an account."""
    _choose_language(client, "en", "/login")
    assert "Log in to Palabre" in _page(client, "/login")


def test_moderator_switches_language_and_keeps_it(app, client):
    """English, then French again, through the header buttons; the choice stays with the account across logins."""
    login(client, "mona")
    _choose_language(client, "en")
    page = _page(client, "/queue")
    assert "Queue" in page and "Log out" in page and "Se déconnecter" not in page

    client.post("/logout", data={"csrf_token": csrf_token(client, "/queue")})
    elsewhere = app.test_client()
    login(elsewhere, "mona")
    page = _page(elsewhere, "/queue")
    assert "Log out" in page and "File d'attente" not in page

    _choose_language(elsewhere, "fr")
    page = _page(elsewhere, "/queue")
    assert "File d'attente" in page and "Se déconnecter" in page and "Log out" not in page


def test_the_choice_is_per_account(app, client):
    """One moderator choosing English leaves the others in French."""
    login(client, "mona")
    _choose_language(client, "en")
    other = app.test_client()
    login(other, "marc")
    page = _page(other, "/queue")
    assert "File d'attente" in page and "Log out" not in page
