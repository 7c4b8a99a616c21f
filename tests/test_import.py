"""`python -m moderation import PATH` as a newsroom runs it: a site's past moderation in, or the file refused whole."""

import json
import shutil

import pandas as pd
import pytest
from sqlalchemy import select

from moderation import corpora
from moderation.comments.models import PUBLISHED, REJECTED
from moderation.database import Database
from moderation.history import HistoryComment, HistoryImport
from moderation.receiving import receive_comments
from moderation.service import decide

from .conftest import ROOT, add_user, incoming, run_cli

SITE_HISTORY = [
    {"id": "h1", "text": "Merci pour cet article clair sur le budget 2026.", "status": "published",
     "article": {"id": "eco-1", "title": "Le budget 2026 adopté", "body": "L'Assemblée a voté le budget."},
     "author": {"id": "awa"}, "created_at": "2026-03-01T10:00:00+00:00", "language": "fr"},
    {"id": "h2", "text": "ferme ta gueule espece de con", "status": "rejected", "reason": "toxic", "created_at": "2026-03-02"},
    {"id": "h3", "text": "Gagnez 500 000 FCFA par jour, écrivez-moi sur WhatsApp", "status": "rejected", "reason": "spam"},
    {"id": "h4", "text": "mdr", "status": "Rejected", "reason": "other"},
    {"id": "h5", "text": "Le ministre ment, comme d'habitude.", "decision": "approved", "toxic": 1},
]


def run_import(path, database_url, tmp_path, monkeypatch):
    """The import command on the test's database."""
    monkeypatch.setenv("MODERATION_DATABASE_URL", database_url)
    return run_cli("import", str(path), models_dir=tmp_path)


def stored(database) -> list[HistoryComment]:
    """The imported comments, in the order they were stored."""
    with database.session() as session:
        return list(session.scalars(select(HistoryComment).order_by(HistoryComment.id)))


def imports(database) -> list[HistoryImport]:
    """The files imported so far."""
    with database.session() as session:
        return list(session.scalars(select(HistoryImport)))


def test_a_data_file_is_imported_whole_with_its_labels_and_only_once(database, database_url, tmp_path, monkeypatch):
    path = ROOT / "data" / "comments" / "partis.csv"
    expected = pd.read_csv(path, dtype=str, keep_default_na=False)
    first = run_import(path, database_url, tmp_path, monkeypatch)
    assert first.returncode == 0, first.stderr.decode()
    assert f"{len(expected)} comments" in first.stdout.decode()
    rows = stored(database)
    assert [row.text for row in rows] == expected["text"].tolist()
    assert [row.toxic for row in rows] == expected["toxic"].astype(float).tolist()
    assert [row.article_id for row in rows] == expected["article_id"].tolist()
    again = run_import(path, database_url, tmp_path, monkeypatch)
    assert again.returncode == 0 and "nothing imported" in again.stdout.decode()
    assert len(stored(database)) == len(expected) and len(imports(database)) == 1


def test_decisions_become_labels_as_a_moderator_meant_them(database, database_url, tmp_path, monkeypatch):
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(record, ensure_ascii=False) for record in SITE_HISTORY) + "\n", encoding="utf-8")
    result = run_import(path, database_url, tmp_path, monkeypatch)
    assert result.returncode == 0, result.stderr.decode()
    assert "1 with neither label" in result.stdout.decode()
    rows = {row.external_id: row for row in stored(database)}
    labels = {ident: (row.toxic, row.off_topic, row.decision) for ident, row in rows.items()}
    assert labels == {"h1": (0.0, 0.0, "published"), "h2": (1.0, None, "rejected"), "h3": (None, 1.0, "rejected"),
                      "h4": (None, None, "rejected"), "h5": (1.0, 0.0, "published")}, "a label given wins over the decision"
    assert (rows["h1"].article_id, rows["h1"].article_title, rows["h1"].author_id) == ("eco-1", "Le budget 2026 adopté", "awa")
    assert rows["h1"].created_at.isoformat() == "2026-03-01T10:00:00+00:00"
    assert rows["h2"].created_at.isoformat() == "2026-03-02T00:00:00+00:00", "a date without a zone is UTC"
    assert [row.line for row in rows.values()] == [1, 2, 3, 4, 5]



def test_a_json_line_is_split_only_at_its_newline(database, database_url, tmp_path, monkeypatch):
    texts = ["Deux paragraphes\u2028dans un seul commentaire", "un autre\u2029avec un séparateur", "le dernier\x85ici"]
    path = tmp_path / "separators.jsonl"
    path.write_text("".join(json.dumps({"text": text, "toxic": 0}, ensure_ascii=False) + "\n" for text in texts), encoding="utf-8")
    result = run_import(path, database_url, tmp_path, monkeypatch)
    assert result.returncode == 0, result.stderr.decode()
    assert [(row.line, row.text) for row in stored(database)] == [(1, texts[0]), (2, texts[1]), (3, texts[2])]

BAD_FILES = [
    ("labels.csv", 'text,toxic,off_topic\n"deux\nlignes",1,0\nbien,0,0\nmal,2,0\n'.encode(), "line 5: 'toxic' must be one of"),
    ("ragged.csv", b"text,toxic\nun,1\ndeux,0,1\n", "line 3 has 3 fields"),
    ("decision.jsonl", b'{"text": "un", "status": "published"}\n{"text": "deux", "status": "maybe"}\n', "line 2: 'decision' must be"),
    ("json.jsonl", b'{"text": "un", "toxic": 1}\n\n{"text": "deux", toxic: 1}\n', "line 3 is not valid JSON"),
    ("date.csv", b"text,toxic,created_at\nun,1,2026-01-01T00:00:00Z\ndeux,0,9999-12-31T23:59:59-23:59\n", "line 3: 'created_at' must fall"),
    ("empty_text.csv", b"text,toxic\nun,1\n   ,0\n", "line 3: 'text' is empty"),
    ("latin1.csv", "text,toxic\nun,1\ncafé,0\n".encode("latin-1"), "line 3 is not UTF-8"),
    ("columns.csv", b"comment,label\nun,1\n", "columns not recognised"),
]


@pytest.mark.parametrize("name, content, message", BAD_FILES, ids=[name for name, _, _ in BAD_FILES])
def test_a_bad_line_refuses_the_file_naming_the_line_and_nothing_is_imported(database, database_url, tmp_path, monkeypatch,
                                                                             name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    result = run_import(path, database_url, tmp_path, monkeypatch)
    assert result.returncode == 1
    error = result.stderr.decode()
    assert message in error and "Traceback" not in error, error
    assert stored(database) == [] and imports(database) == []


def test_a_public_corpus_file_is_imported_as_training_reads_it(database, database_url, tmp_path, monkeypatch):
    path = ROOT / "data" / "public" / "ftr" / "FTR_new_labels.csv"
    expected = corpora.load([path]).frame
    result = run_import(path, database_url, tmp_path, monkeypatch)
    assert result.returncode == 0, result.stderr.decode()
    rows = stored(database)
    assert len(rows) == len(expected) and sum(row.toxic for row in rows) == expected["toxic"].sum()
    assert {row.off_topic for row in rows} == {None}, "FTR says nothing of off-topic"


def test_palabres_own_export_is_imported_back_with_each_moderators_decision(database, database_url, scorer, tmp_path,
                                                                           monkeypatch, sqlite_template):
    decided = {"e-ok": (PUBLISHED, None), "e-insult": (REJECTED, "toxic"), "e-spam": (REJECTED, "spam")}
    with database.session() as session:
        moderator = add_user(session, "mona", "moderator", password_hash="unused")
        texts = {"e-ok": "Le budget de la santé augmente enfin, bonne nouvelle.", "e-insult": "ferme ta gueule espèce de con",
                 "e-spam": "Gagnez 500 000 FCFA par jour, écrivez-moi sur WhatsApp"}
        received = receive_comments(session, scorer, [incoming(ident, text, author_id="awa") for ident, text in texts.items()])
        for result in received:
            status, reason = decided[result.comment.external_id]
            decide(session, result.comment.id, moderator, status, reason)
        receive_comments(session, scorer, [incoming("e-undecided", "Un avis parmi d'autres sur le référendum.")])
    monkeypatch.setenv("MODERATION_DATABASE_URL", database_url)
    exported = run_cli("export", models_dir=tmp_path, check=True).stdout
    records = [json.loads(line) for line in exported.decode().splitlines()]
    assert [record["id"] for record in records] == list(decided), "moderator decisions only, oldest first"
    path = tmp_path / "export.jsonl"
    path.write_bytes(exported)
    other = tmp_path / "other.sqlite3"
    shutil.copy(sqlite_template, other)
    result = run_import(path, f"sqlite:///{other}", tmp_path, monkeypatch)
    assert result.returncode == 0, result.stderr.decode()
    with Database(f"sqlite:///{other}").session() as session:
        rows = {row.external_id: row for row in session.scalars(select(HistoryComment))}
    assert {ident: (row.decision, row.reason, row.toxic, row.off_topic) for ident, row in rows.items()} == {
        "e-ok": (PUBLISHED, None, 0.0, 0.0), "e-insult": (REJECTED, "toxic", 1.0, None), "e-spam": (REJECTED, "spam", None, 1.0)}
    assert rows["e-insult"].text == texts["e-insult"] and rows["e-insult"].author_id == "awa"
    assert rows["e-ok"].article_title == "Référendum : le projet de nouvelle Constitution soumis au vote"
