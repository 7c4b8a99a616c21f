"""The command line as a user runs it: real subprocesses, real files, real stdin and stdout."""

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moderation import corpora
from moderation.splits import HELD_OUT_BATCHES

from .conftest import ROOT, json_lines, resign, run_cli


def test_train_reports_progress_version_metrics_and_report(trained):
    models_dir, version, result = trained
    if result is None:
        pytest.skip("MODERATION_TEST_MODELS_DIR reused a kept model, so there is no training output to check")
    err, out = result.stderr.decode(), result.stdout.decode()
    assert "training rows" in err and "checks:" in err and "s]" in err
    assert out.startswith(f"version {version}\n")
    assert "| toxic |" in out and "| off_topic |" in out
    folder = models_dir / version
    for name in ("model.joblib", "metadata.json", "report.md", "pr_toxic.png", "scores_toxic.png", "pr_off_topic.png", "scores_off_topic.png"):
        assert (folder / name).stat().st_size > 0, name
    metadata = json.loads((folder / "metadata.json").read_text())
    formats = {entry["format"] for entry in metadata["training_data"]}
    assert {"canonical", "mlma", "ftr", "davidson", "toxic_spans"} <= formats, "data/ and each vendored corpus are recorded"
    assert all(entry["weight"] == 1.0 for entry in metadata["training_data"] if entry["format"] == "canonical")
    assert all(len(entry["sha256"]) == 64 and entry["rows"] > 0 for entry in metadata["training_data"])
    assert set(metadata["metrics"]["holdout"]) == {"toxic", "off_topic"}
    assert "scikit-learn" in metadata["libraries"] and len(metadata["model_sha256"]) == 64


def test_score_writes_one_line_per_input_in_order(models_dir):
    lines = [
        {"id": "c1", "text": "Les patrouilles communes vont aider les villages.", "article": {"title": "Sahel", "body": "Patrouilles communes à la frontière."}},
        {"id": 2, "text": "Espèce de C0NN4RD"},
        {"text": "sans identifiant"},
    ]
    stdin = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode() + b"\n"
    result = run_cli("score", models_dir=models_dir, stdin=stdin, check=True)
    output = json_lines(result.stdout)
    assert [record["id"] for record in output] == ["c1", 2, None]
    for record in output:
        assert {"toxic", "off_topic", "decision", "labels", "explanation", "model_version"} <= set(record)
        assert record["decision"] in {"publish", "review", "reject"}
    assert "toxic" in output[1]["labels"]


def test_bad_lines_get_error_lines_and_their_neighbours_are_scored(models_dir):
    good = json.dumps({"id": "ok", "text": "Bonne analyse du budget."}).encode()
    bad_lines = [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (json.dumps({"id": "e", "text": ""}).encode(), "'text' is empty"),
        (json.dumps({"id": "n", "text": None}).encode(), "'text' is required"),
        (json.dumps({"id": "t", "text": 12}).encode(), "must be a string"),
        (b"\xff\xfe\x00binary\x80junk", "not UTF-8"),
        (json.dumps({"id": "big", "text": "a" * 1_000_000}).encode(), "1,000,000 characters long"),
        (json.dumps({"id": "nul", "text": "a\x00b"}).encode(), "NUL character"),
        (b'{"id": "s", "text": "bad \\ud800 surrogate"}', "lone surrogate"),
        (json.dumps({"id": "a", "text": "ok", "article": "titre"}).encode(), "'article' must be an object"),
        (b"", "not valid JSON"),
        (b'{"id": 1' + b"0" * 5000 + b', "text": "x"}', "cannot be read as JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "cannot be read as JSON"),
        (b'{"id": NaN, "text": "x"}', "NaN is not a JSON value"),
        (json.dumps({"id": "z", "text": "\u200b\u200f"}).encode(), "no visible characters"),
    ]
    stdin = good + b"\n" + b"\n".join(line + b"\n" + good for line, _ in bad_lines) + b"\n"
    result = run_cli("score", models_dir=models_dir, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    output = json_lines(result.stdout)
    assert len(output) == 1 + 2 * len(bad_lines)
    assert all(record["id"] == "ok" and "toxic" in record for record in output[0::2])
    for record, (_, message) in zip(output[1::2], bad_lines):
        assert message in record["error"], (message, record)


def test_a_long_input_comes_back_in_order_with_each_bad_line_in_its_place(models_dir, scorer):
    """More lines than one chunk holds: every line answered in order, the good ones as if scored alone."""
    texts = corpora.load(["data"]).frame["text"].sample(600, random_state=2).tolist()
    lines, expected = [], []
    for number, text in enumerate(texts):
        if number % 97 == 5:
            lines.append(b"{broken")
            expected.append(("not valid JSON", None))
        elif number % 89 == 7:
            lines.append(json.dumps({"id": number, "text": " "}).encode())
            expected.append(("'text' is empty", number))
        else:
            article = {"title": "Sahel", "body": "Patrouilles communes à la frontière."} if number % 3 else None
            lines.append(json.dumps({"id": number, "text": text, "article": article}, ensure_ascii=False).encode())
            expected.append((scorer.score(text, article), number))
    output = json_lines(run_cli("score", models_dir=models_dir, stdin=b"\n".join(lines) + b"\n", check=True).stdout)
    assert len(output) == len(lines)
    for record, (want, identifier) in zip(output, expected):
        assert record["id"] == identifier
        if isinstance(want, str):
            assert want in record["error"]
        else:
            assert record["toxic"] == pytest.approx(want["toxic"], abs=1e-9)
            assert record["off_topic"] == pytest.approx(want["off_topic"], abs=1e-9)
            assert (record["explanation"], record["decision"]) == (want["explanation"], want["decision"])


def test_a_byte_order_mark_is_read_on_the_first_line_only(models_dir):
    bom = "\ufeff".encode()
    stdin = bom + json.dumps({"id": 1, "text": "Bravo"}).encode() + b"\n" + bom + json.dumps({"id": 2, "text": "ok"}).encode() + b"\n"
    output = json_lines(run_cli("score", models_dir=models_dir, stdin=stdin, check=True).stdout)
    assert output[0]["id"] == 1 and "toxic" in output[0]
    assert output[1]["id"] is None and "line 2 is not valid JSON" in output[1]["error"]


def test_a_line_written_alone_is_answered_before_the_next_is_sent(models_dir):
    """A program feeding comments one by one through a pipe gets each answer as soon as it is scored."""
    env = dict(os.environ, MODERATION_MODELS_DIR=str(models_dir), MODERATION_SECRET_KEY="test-signing-key")
    process = subprocess.Popen([sys.executable, "-m", "moderation", "score"], cwd=ROOT, env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for number in range(3):
            process.stdin.write(json.dumps({"id": number, "text": "Bravo aux soldats"}).encode() + b"\n")
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], 120)
            assert ready, f"no answer to line {number + 1} while the input stays open"
            assert json.loads(process.stdout.readline())["id"] == number
    finally:
        process.stdin.close()
        process.wait(timeout=120)
        process.stdout.close()


def test_surrogate_id_is_echoed_without_breaking_the_output(models_dir):
    result = run_cli("score", models_dir=models_dir, stdin=b'{"id": "\\udc80", "text": "bonjour"}\n', check=True)
    assert json_lines(result.stdout)[0]["id"] == "\udc80"


def test_score_without_a_model_says_how_to_train(tmp_path):
    result = run_cli("score", models_dir=tmp_path, stdin=b'{"text": "bonjour"}\n')
    assert result.returncode == 1
    assert "python -m moderation train --data data --activate" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def test_evaluate_uses_held_out_rows_of_training_files(models_dir):
    """The project's own comments: held-out articles of each batch, and the batches held out whole."""
    result = run_cli("evaluate", "--data", "data/comments", "--data", "data/articles", "--json", models_dir=models_dir, check=True)
    report = json.loads(result.stdout)
    splits = {Path(entry["path"]).stem: entry["split"] for entry in report["data"]}
    assert {splits.pop(stem) for stem in HELD_OUT_BATCHES} == {"holdout, whole batch"}
    assert set(splits.values()) == {"holdout"}
    rows = {Path(entry["path"]).stem: entry["rows"] for entry in report["data"]}
    assert rows["sport"] == len(pd.read_csv(ROOT / "data/comments/sport.csv")) and rows["politique"] < 400
    for label in ("toxic", "off_topic"):
        metrics = report["metrics"][label]
        assert {"roc_auc", "pr_auc", "precision", "recall", "f1", "tp", "fp", "tn", "fn"} <= set(metrics)
        assert metrics["tp"] + metrics["fp"] + metrics["tn"] + metrics["fn"] == metrics["rows"]
        assert metrics["roc_auc"] > 0.8


def test_evaluate_prints_a_table_for_people(models_dir):
    result = run_cli("evaluate", "--data", "data/comments", models_dir=models_dir, check=True)
    text = result.stdout.decode()
    assert "| toxic |" in text and "(holdout)" in text
    assert "writing batches held out whole (no model learns from any of their rows): site, sport" in text


def test_evaluate_on_a_new_file_uses_every_row(models_dir, tmp_path):
    (tmp_path / "site.csv").write_text("text,toxic\nespèce d'idiot,1\nmerci pour l'article,0\n", encoding="utf-8")
    report = json.loads(run_cli("evaluate", "--data", str(tmp_path / "site.csv"), "--json", models_dir=models_dir, check=True).stdout)
    assert report["data"][0]["split"] == "all" and report["metrics"]["toxic"]["rows"] == 2


def test_unreadable_data_is_refused_by_name(models_dir, tmp_path):
    (tmp_path / "weird.csv").write_text("message,score\nsalut,1\n")
    result = run_cli("train", "--data", str(tmp_path), models_dir=tmp_path / "m")
    assert result.returncode == 1
    assert "weird.csv" in result.stderr.decode() and "match no known format" in result.stderr.decode()


def test_models_list_activate_rollback(trained, tmp_path):
    models_dir, version, _ = trained
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    shutil.copytree(copy / version, copy / "20990101-000000")
    resign(copy / "20990101-000000", version="20990101-000000")
    assert f"* {version}" in run_cli("models", "list", models_dir=copy, check=True).stdout.decode()
    assert run_cli("models", "activate", "20990101-000000", models_dir=copy, check=True).stdout.decode() == "activated 20990101-000000\n"
    listing = run_cli("models", "list", models_dir=copy, check=True).stdout.decode()
    assert "* 20990101-000000" in listing and f"  {version}" in listing
    assert run_cli("models", "rollback", models_dir=copy, check=True).stdout.decode() == f"rolled back to {version}\n"
    refused = run_cli("models", "activate", "no-such-version", models_dir=copy)
    assert refused.returncode == 1 and "no model version 'no-such-version'" in refused.stderr.decode()
    nothing = run_cli("models", "rollback", models_dir=copy)
    assert nothing.returncode == 1 and "nothing to roll back to" in nothing.stderr.decode()


def test_a_missing_check_list_is_refused_not_skipped(tmp_path):
    result = run_cli("train", "--data", "data", "--checks", str(tmp_path / "nope.csv"), models_dir=tmp_path / "m")
    assert result.returncode == 2 and "nope.csv" in result.stderr.decode()


def test_rows_with_their_own_source_are_all_evaluated(models_dir, tmp_path):
    (tmp_path / "site.csv").write_text("text,toxic,source\nespèce d'idiot,1,site\nmerci,0,site\nbravo,0,\n", encoding="utf-8")
    report = json.loads(run_cli("evaluate", "--data", str(tmp_path / "site.csv"), "--json", models_dir=models_dir, check=True).stdout)
    assert report["metrics"]["toxic"]["rows"] == 3


def test_output_closed_early_is_not_an_error(models_dir):
    stdin = b"\n".join(json.dumps({"text": f"commentaire {n}"}).encode() for n in range(2000)) + b"\n"
    env_cmd = f"{sys.executable} -m moderation score | head -1"
    result = subprocess.run(env_cmd, shell=True, cwd=ROOT, input=stdin, capture_output=True, timeout=300,
                            env=dict(os.environ, MODERATION_MODELS_DIR=str(models_dir)))
    assert len(result.stdout.splitlines()) == 1
    assert b"Traceback" not in result.stderr


def database_cli(*args, database_url, stdin=None, app_cli=False, models_dir=None):
    """Run a database command as `python -m moderation` (or `flask --app app`) against one database."""
    env = dict(os.environ, MODERATION_DATABASE_URL=database_url, MODERATION_SECRET_KEY="test-signing-key")
    if models_dir is not None:
        env["MODERATION_MODELS_DIR"] = str(models_dir)
    command = [sys.executable, "-m", "flask", "--app", "app"] if app_cli else [sys.executable, "-m", "moderation"]
    return subprocess.run([*command, *args], cwd=ROOT, env=env, input=stdin, capture_output=True, timeout=300)


def test_init_db_creates_the_schema_and_is_safe_to_repeat(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    for _ in range(2):
        result = database_cli("init-db", database_url=url)
        assert result.returncode == 0 and "database ready: sqlite:///" in result.stdout.decode()
    assert (tmp_path / "fresh.sqlite3").stat().st_size > 0


def test_create_user_reads_the_password_from_stdin_and_the_account_can_log_in(tmp_path):
    url = f"sqlite:///{tmp_path / 'users.sqlite3'}"
    made = database_cli("create-user", "awa", "--role", "admin", "--password-stdin", database_url=url, stdin=b"un long secret\n")
    assert made.returncode == 0 and made.stdout.decode().strip() == "created admin awa"
    from moderation.auth.models import User
    from moderation.database import Database

    database = Database(url)
    with database.session() as session:
        user = session.query(User).one()
        assert (user.username, user.role, user.check_password("un long secret")) == ("awa", "admin", True)
    database.engine.dispose()


@pytest.mark.parametrize("args, stdin, message", [
    (["awa"], b"court\n", "at least 10 characters"),
    (["a b"], b"un long secret\n", "visible characters without spaces"),
    (["awa", "--role", "chef"], b"un long secret\n", "'chef' is not one of"),
])
def test_create_user_refuses_bad_input_with_the_reason(tmp_path, args, stdin, message):
    result = database_cli("create-user", *args, "--password-stdin", database_url=f"sqlite:///{tmp_path / 'u.sqlite3'}", stdin=stdin)
    assert result.returncode == 2 if "--role" in args else result.returncode == 1
    assert message in result.stderr.decode()


def test_the_same_username_twice_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'twice.sqlite3'}"
    database_cli("create-user", "awa", "--password-stdin", database_url=url, stdin=b"un long secret\n")
    again = database_cli("create-user", "awa", "--password-stdin", database_url=url, stdin=b"un autre secret\n")
    assert again.returncode == 1 and "'awa' is taken" in again.stderr.decode()


def test_commands_are_also_mounted_under_flask(tmp_path):
    url = f"sqlite:///{tmp_path / 'flask.sqlite3'}"
    made = database_cli("create-user", "kofi", "--password-stdin", database_url=url, stdin=b"un long secret\n", app_cli=True)
    assert made.returncode == 0 and "created moderator kofi" in made.stdout.decode()
    listed = database_cli("--help", database_url=url, app_cli=True).stdout.decode()
    assert all(name in listed for name in ("train", "score", "models", "init-db", "demo"))


def test_demo_loads_the_projects_comments_once_however_often_it_runs(tmp_path, models_dir):
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    for _ in range(2):
        result = database_cli("demo", database_url=url, models_dir=models_dir)
        assert result.returncode == 0 and result.stdout.decode().strip() == "demo: 1500 comments received"
    from sqlalchemy import func, select

    from moderation.comments.models import Comment, Decision
    from moderation.database import Database

    database = Database(url)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Comment)) == 1500
        by_model = select(func.count()).select_from(Decision).where(Decision.decided_by == "model")
        assert session.scalar(by_model) == 1500
        moderators = session.execute(select(Decision.verdict, func.count()).where(Decision.decided_by == "moderator")
                                     .group_by(Decision.verdict)).all()
        statuses = set(session.scalars(select(Comment.status)))
    database.engine.dispose()
    assert statuses == {"published", "pending", "rejected"}
    assert dict(moderators)["confirm"] > dict(moderators).get("override", 0) > 0


def test_create_client_prints_its_key_once_alone_on_the_last_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'clients.sqlite3'}"
    result = database_cli("create-client", "site", "--webhook-url", "https://site.example/hooks", database_url=url)
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0 and lines[-1].startswith("pal_") and " " not in lines[-1]
    from moderation.api.clients import authenticate
    from moderation.database import Database

    database = Database(url)
    client = authenticate(database, lines[-1])
    assert (client.name, client.webhook_url) == ("site", "https://site.example/hooks")
    assert any(client.webhook_secret in line for line in lines)
    database.engine.dispose()
    again = database_cli("create-client", "site", database_url=url)
    assert again.returncode == 1 and "exists already" in again.stderr.decode()
    bad = database_cli("create-client", "autre", "--webhook-url", "ftp://x", database_url=url)
    assert bad.returncode == 1 and "https://" in bad.stderr.decode()


def test_deliver_once_reports_what_it_sent(tmp_path):
    result = database_cli("deliver", "--once", database_url=f"sqlite:///{tmp_path / 'deliver.sqlite3'}")
    assert result.returncode == 0 and result.stdout.decode().strip() == "delivered 0 webhook events"


JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                          lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
                          max_leaves=5)
COMMENT = st.fixed_dictionaries({"text": st.text(st.characters(codec=None, exclude_categories=()), max_size=80)},
                                optional={"id": st.text(max_size=10) | st.integers(), "article": JSON_VALUE})
SCORE_LINE = st.one_of(
    st.binary(max_size=60),
    st.builds(lambda comment, ascii_only: json.dumps(comment, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"),
              COMMENT, st.booleans()),
    JSON_VALUE.map(lambda value: json.dumps(value).encode()),
).map(lambda line: line.replace(b"\n", b" "))


@given(lines=st.lists(SCORE_LINE, min_size=1, max_size=25))
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
def test_any_input_to_score_gets_one_answer_per_line_in_order_and_never_a_crash(models_dir, lines):
    result = run_cli("score", models_dir=models_dir, stdin=b"\n".join(lines) + b"\n")
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr.decode()[-2000:]
    output = json_lines(result.stdout)
    assert len(output) == len(lines)
    for line, record in zip(lines, output):
        assert "toxic" in record or record.get("error"), (line, record)
        try:
            sent = json.loads(line)
        except ValueError:
            continue
        if isinstance(sent, dict) and isinstance(sent.get("id"), str | int) and not isinstance(sent.get("id"), bool):
            assert record["id"] == sent["id"], (line, record)
