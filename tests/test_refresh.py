"""The weekly refresh with real training (on a few files of data/, to stay quick): the gate, the time split, the lock, a kill."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import select

from moderation import feedback, history, refresh, schedule, training
from moderation.build import build
from moderation.comments.models import PUBLISHED, REJECTED, Comment
from moderation.history import HistoryComment, HistoryImport
from moderation.receiving import receive_comments
from moderation.registry import Registry
from moderation.service import decide
from moderation.training import MAX_SITE_SHARE, source_weight

from .conftest import ROOT, TEST_KEY, add_user, incoming

SMALL_FILES = ("partis", "insultes", "horssujet", "politique", "economie")
START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
CODED = "kpatoglo"  # a site's new insult, unknown to data/: its moderators teach it
SUBJECTS = ["le ministre", "le maire", "ce député", "le préfet", "ce conseiller", "le porte-parole", "ce directeur", "le gouverneur"]
CLAIMS = ["a encore menti sur le budget du référendum", "ne comprend rien à la Constitution", "bloque le vote depuis des mois",
          "parle du calendrier électoral sans l'avoir lu", "promet des routes avant chaque vote", "défend le projet de Constitution"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """A few files of data/ and its articles: enough to train a real model in seconds."""
    folder = tmp_path_factory.mktemp("small-data")
    (folder / "comments").mkdir()
    for name in SMALL_FILES:
        shutil.copy(ROOT / "data" / "comments" / f"{name}.csv", folder / "comments")
    shutil.copytree(ROOT / "data" / "articles", folder / "articles")
    return folder


@pytest.fixture(scope="module")
def small_registry(small_data, tmp_path_factory):
    """A registry holding one model trained on the small data, active."""
    registry = Registry(tmp_path_factory.mktemp("small-models"))
    registry.activate(build([small_data], registry, checks_path=None).version)
    return registry


@pytest.fixture
def registry(small_registry, tmp_path):
    """A copy of the small registry for one test to change."""
    shutil.copytree(small_registry.root, tmp_path / "models")
    return Registry(tmp_path / "models")


def moderate(database, registry, decisions: list[tuple[str, str, str | None]]) -> None:
    """The site sends each comment, then a moderator decides it (status, reason), a minute after the one before."""
    with database.session() as session:
        moderator = add_user(session, f"mod{random.random():.8f}", "moderator", password_hash="unused")
        comments = [incoming(f"site-{number}", text, created_at=START + timedelta(minutes=number))
                    for number, (text, _, _) in enumerate(decisions)]
        received = receive_comments(session, registry.load(), comments, now=START)
        assert all(not isinstance(one, Exception) for one in received)
        for number, (result, (_, status, reason)) in enumerate(zip(received, decisions)):
            decide(session, result.comment.id, moderator, status, reason, now=START + timedelta(minutes=number))


def coded_insults(count: int, seed: int = 5) -> list[tuple[str, str, str | None]]:
    """Comments on the referendum, half calling someone a kpatoglo (rejected as toxic), half not (published), mixed in time."""
    rng = random.Random(seed)
    decisions = []
    for number in range(count):
        subject, claim = rng.choice(SUBJECTS), rng.choice(CLAIMS)
        if number % 2:
            decisions.append((f"{subject.capitalize()} {claim}, ce {CODED}.", REJECTED, "toxic"))
        else:
            decisions.append((f"{subject.capitalize()} {claim}, c'est dommage.", PUBLISHED, None))
    return decisions


def test_a_candidate_that_learnt_the_sites_new_insult_is_promoted(database, small_data, registry):
    before = registry.active()
    moderate(database, registry, coded_insults(240))
    outcome = refresh.refresh(database, registry, [small_data], checks_path=None)
    assert outcome.promoted and registry.active() == outcome.version != before, outcome.reasons
    comparison = outcome.comparison["recent"]
    assert comparison["candidate"]["toxic"]["pr_auc"] > comparison["active"]["toxic"]["pr_auc"] + 0.1
    assert registry.load().score(f"Le préfet bloque le vote depuis des mois, ce {CODED}.")["toxic"] > \
        registry.load(before).score(f"Le préfet bloque le vote depuis des mois, ce {CODED}.")["toxic"]
    stored = registry.verify(outcome.version)["refresh"]
    assert stored["promoted"] and stored["active_before"] == before and stored["recent_rows"] == 48
    overridden = [row for row in stored["overridden"] if CODED in row["text"]]
    assert overridden and all(row["scores"]["candidate"]["toxic"] > row["scores"]["active"]["toxic"] for row in overridden)
    report = (registry.root / outcome.version / "report.md").read_text()
    assert "## Refresh" in report and "| toxic | candidate |" in report and "| toxic | active |" in report
    assert "Comments moderators overrode" in report and CODED in report
    assert (registry.root / outcome.version / "compare_recent_toxic.png").stat().st_size > 0


def test_a_candidate_taught_the_opposite_of_data_is_refused_and_the_active_model_stays(database, small_data, registry):
    before = registry.active()
    insults = pd.read_csv(ROOT / "data" / "comments" / "harassment.csv")
    clean = pd.read_csv(ROOT / "data" / "comments" / "humain.csv")
    flipped = [(text, PUBLISHED, None) for text in insults.loc[insults["toxic"] == 1, "text"].head(150)]
    flipped += [(text, REJECTED, "toxic") for text in clean.loc[clean["toxic"] == 0, "text"].head(150)]
    random.Random(3).shuffle(flipped)
    moderate(database, registry, flipped)
    outcome = refresh.refresh(database, registry, [small_data], checks_path=None)
    assert not outcome.promoted and registry.active() == before
    assert any("toxic PR-AUC on the data/ holdout" in reason for reason in outcome.reasons), outcome.reasons
    assert outcome.version in {entry["version"] for entry in registry.versions()}, "the refused candidate is kept, with its verdict"
    assert registry.verify(outcome.version)["refresh"]["promoted"] is False


def test_the_time_split_never_learns_from_a_decision_as_new_as_those_it_is_judged_on(database, registry):
    moderate(database, registry, coded_insults(50))
    with database.session() as session:
        record = HistoryImport(file_name="later.csv", sha256="0" * 64, format="history", rows=2)
        session.add(record)
        session.flush()
        session.add_all([HistoryComment(import_id=record.id, text="écrit après la coupure", toxic=1.0,
                                        created_at=START + timedelta(days=30)),
                         HistoryComment(import_id=record.id, text="sans date", toxic=0.0)])
        session.commit()
        rows = feedback.gather(session)
    split = feedback.split_by_time(rows)
    assert len(split.recent) == 10 and split.cut == START + timedelta(minutes=40)
    assert split.train["at"].dropna().max() < split.cut <= split.recent["at"].min()
    assert not set(split.recent["source"]) & set(split.train["source"]), "no comment is on both sides"
    assert "écrit après la coupure" not in set(split.train["text"]) and "sans date" in set(split.train["text"])
    ages = pd.DataFrame({"at": [split.cut - timedelta(days=365), split.cut, split.cut], "override": [False, False, True],
                         "scale": 1.0})
    year_old, confirmed, overridden = feedback.weights(ages, split.cut)
    assert year_old < confirmed < overridden, "newer decisions, and overrides above all, weigh more"


def test_an_imported_history_alone_is_judged_on_a_share_of_itself_and_can_be_promoted(database, small_data, registry, tmp_path):
    before = registry.active()
    path = tmp_path / "archive.csv"
    pd.DataFrame([(text, int(status == REJECTED)) for text, status, _ in coded_insults(300, seed=8)],
                 columns=["text", "toxic"]).to_csv(path, index=False)
    with database.session() as session:
        history.store(session, history.read(path))
        session.commit()
    outcome = refresh.refresh(database, registry, [small_data], checks_path=None)
    stored = registry.verify(outcome.version)["refresh"]
    assert stored["judged"] == "the site's held-out history" and 40 <= stored["recent_rows"] <= 80
    assert stored["site_rows"] + stored["recent_rows"] == 300
    assert outcome.promoted and registry.active() == outcome.version != before, outcome.reasons
    assert any("the site's held-out history" in reason for reason in outcome.reasons)


def test_a_comment_held_as_toxic_and_published_teaches_that_it_is_not_toxic_but_nothing_of_its_topic(database, registry):
    insult, spam = f"Le ministre ment encore sur le budget, ce {CODED} de voleur", "Gagnez 500 000 FCFA par jour sur www.pari-facile.ci"
    moderate(database, registry, [(insult, PUBLISHED, None), (spam, PUBLISHED, None)])
    with database.session() as session:
        flags = {row.text: (row.toxic_flag, row.off_topic_flag, row.review_reason)
                 for row in session.scalars(select(Comment))}
        rows = feedback.gather(session).set_index("text")
    assert flags[insult][:2] == (True, False) and flags[insult][2] == "flagged", "the small model holds the insult as toxic only"
    assert flags[spam][1], "the small model holds the betting link as off-topic"
    assert rows.at[insult, "toxic"] == 0 and pd.isna(rows.at[insult, "off_topic"])
    assert rows.at[spam, "toxic"] == 0 and rows.at[spam, "off_topic"] == 0, "published after an off-topic flag: on topic here"


def test_a_site_of_many_rows_is_learnt_from_a_sample_drawn_by_weight():
    frame = pd.DataFrame({"text": [f"commentaire {number}" for number in range(10_000)],
                          "at": pd.date_range(end=START, periods=10_000, freq="h", tz=UTC),
                          "override": [number % 10 == 0 for number in range(10_000)], "scale": 1.0})
    weights = feedback.weights(frame, START)
    drawn = feedback.sample(frame, weights, limit=1000)
    assert len(drawn) == 1000 and drawn["text"].is_unique
    assert drawn["row_weight"].sum() == pytest.approx(1000 * weights.mean())
    assert drawn["override"].mean() > 0.15, "overridden decisions, a tenth of the rows, weigh double and are drawn more"
    assert drawn["at"].median() > frame["at"].median(), "newer decisions are drawn more"
    assert drawn["text"].tolist() == feedback.sample(frame, weights, limit=1000)["text"].tolist(), "the same draw every run"
    assert feedback.sample(frame.head(500), weights[:500], limit=1000)["row_weight"].tolist() == list(weights[:500])


def test_a_sites_rows_never_weigh_more_than_everything_else_together():
    frame = pd.DataFrame({"file": ["data/a.csv"] * 100 + ["site:decisions"] * 1000, "weight": [1.0] * 100 + [3.0] * 1000})
    said = []
    training._bound_site_share(frame, {"data/a.csv": "canonical", "site:decisions": "site"}, said.append)
    assert frame.loc[frame["file"] == "site:decisions", "weight"].sum() == pytest.approx(100 * MAX_SITE_SHARE / (1 - MAX_SITE_SHARE))
    assert frame.loc[frame["file"] == "data/a.csv", "weight"].sum() == 100 and "scaled" in said[0]


def run_refresh(database_url: str, models: str, data, *options) -> subprocess.Popen:
    """`python -m moderation refresh` as cron would start it."""
    env = dict(os.environ, MODERATION_DATABASE_URL=database_url, MODERATION_MODELS_DIR=models, MODERATION_SECRET_KEY=TEST_KEY)
    return subprocess.Popen([sys.executable, "-m", "moderation", "refresh", "--data", str(data), *options], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_second_refresh_started_meanwhile_says_so_and_exits_without_training(database, database_url, small_data, registry):
    versions = registry.versions()
    with refresh.one_at_a_time(database):
        process = run_refresh(database_url, str(registry.root), small_data)
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()
    assert "another refresh is running" in out.decode() and "nothing done" in out.decode()
    assert "training rows" not in err.decode()
    assert registry.versions() == versions


def test_a_refresh_killed_while_training_leaves_the_active_model_and_the_next_one_runs(database, database_url, small_data,
                                                                                        registry):
    before, versions = registry.active(), registry.versions()
    process = run_refresh(database_url, str(registry.root), small_data)
    seen = b""
    deadline = time.monotonic() + 120
    while b"vocabulary" not in seen and time.monotonic() < deadline:
        seen += process.stderr.readline()
    assert b"vocabulary" in seen, seen.decode()
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    process.stdout.close()
    process.stderr.close()
    assert registry.active() == before and registry.versions() == versions
    assert registry.load().version == before
    with refresh.one_at_a_time(database):
        pass  # the killed process's lock went with it
    again = run_refresh(database_url, str(registry.root), small_data, "--dry-run")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()
    assert "candidate" in out.decode() and registry.active() == before
    assert len(registry.versions()) == len(versions) + 1


def test_the_scheduler_refuses_a_bad_schedule_at_once(tmp_path):
    for variable, value, message in (("MODERATION_REFRESH_CRON", "0 25 * * 1", "not a cron expression"),
                                     ("MODERATION_TIMEZONE", "Afrique/Abidjan", "not a time zone name")):
        env = dict(os.environ, **{variable: value}, MODERATION_DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
                   MODERATION_SECRET_KEY=TEST_KEY)
        result = subprocess.run([sys.executable, "-m", "moderation", "scheduler"], cwd=ROOT, env=env, capture_output=True,
                                timeout=60)
        assert result.returncode == 1 and message in result.stderr.decode() and value in result.stderr.decode()


def test_the_default_schedule_is_monday_three_in_the_morning_in_abidjan():
    expression, zone = schedule.DEFAULT_CRON, ZoneInfo(schedule.DEFAULT_TIMEZONE)
    thursday_evening = datetime(2026, 12, 3, 19, 0, tzinfo=UTC)
    assert schedule.next_run(expression, zone, thursday_evening) == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    paris = ZoneInfo("Europe/Paris")
    assert schedule.next_run(expression, paris, thursday_evening).astimezone(UTC) == datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def test_the_scheduler_starts_a_refresh_when_due_and_stops_on_sigterm(database, database_url, small_data, registry):
    env = dict(os.environ, MODERATION_DATABASE_URL=database_url, MODERATION_MODELS_DIR=str(registry.root),
               MODERATION_SECRET_KEY=TEST_KEY, MODERATION_REFRESH_CRON="* * * * *", MODERATION_TIMEZONE="UTC")
    with refresh.one_at_a_time(database):  # the scheduled run meets a refresh already running: it says so, trains nothing
        process = subprocess.Popen([sys.executable, "-m", "moderation", "scheduler", "--data", str(small_data)], cwd=ROOT,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = process.stdout.readline()  # at most a minute, then the refresh's answer
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert b"another refresh is running" in line and b"nothing done" in line, (line + out + err).decode()
    assert process.returncode == 0 and b"next refresh:" in err and b"scheduler stopped" in err


def test_whether_a_refresh_is_running_can_be_asked_without_getting_in_its_way(database):
    assert not refresh.is_running(database)
    with refresh.one_at_a_time(database):
        assert refresh.is_running(database)
    assert not refresh.is_running(database)


def test_a_public_corpus_imported_as_history_keeps_its_corpus_weight(database, tmp_path):
    own = tmp_path / "own.csv"
    own.write_text("text,toxic\nun commentaire du site,0\n", encoding="utf-8")
    with database.session() as session:
        for path in (own, ROOT / "data" / "public" / "ftr" / "FTR_new_labels.csv"):
            history.store(session, history.read(path))
        session.commit()
        rows = feedback.gather(session)
    weights = pd.Series(feedback.weights(rows, START), index=rows["text"])
    corpus = weights.drop("un commentaire du site")
    assert set(corpus.round(6)) == {round(weights["un commentaire du site"] * source_weight("ftr", "fr"), 6)}
