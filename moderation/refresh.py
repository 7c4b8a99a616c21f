"""The weekly refresh: a candidate trained on data/ and the site's own decisions, promoted only if it is not worse.

The candidate and the active model are judged on the same rows: the fixed holdout of `data/`
and the site's newest decisions, which the candidate never learnt from (`feedback.split_by_time`).
The candidate is promoted when it fails at most CHECKS_TOLERANCE of `data/checks.csv` (a total, so
failures cannot pile up week after week), its PR-AUC on each label is within TOLERANCE of the
active model's on both, and it is better than the active model on the site's newest decisions.
Either way it is saved, with the verdict and its reasons signed in its metadata; only promotion
moves the active pointer, in one rename, so a refresh killed at any moment leaves the active model
serving. One refresh runs at a time across every process and machine sharing the database
(`one_at_a_time`).
"""

import fcntl
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import text

from . import corpora, feedback
from .build import DEFAULT_CHECKS, build
from .corpora import LABELS
from .database import Database, utcnow
from .evaluation import evaluate, predict
from .registry import PROJECT_ROOT, Registry

TOLERANCE = 0.01  # PR-AUC a candidate may lose on a label and still be "not worse"
CHECKS_TOLERANCE = 0.02  # share of data/checks.csv a candidate may fail in all (rounded down: 3 of 167)
LOCK_KEY = 0x70616C6272  # PostgreSQL advisory lock of the refresh ("palbr")
OVERRIDES_SHOWN = 50  # overridden comments listed in the report, newest first
OVERRIDE_TEXT_CHARS = 500


@dataclass
class Outcome:
    """What a refresh did: the candidate saved, whether it passed and was activated, and why."""

    version: str
    active_before: str | None
    passed: bool
    promoted: bool
    reasons: list[str]
    comparison: dict


class Busy(Exception):
    """Another refresh holds the lock."""


@contextmanager
def one_at_a_time(database: Database):
    """Hold the refresh lock for the block, or raise Busy; released by the system if the process dies.

    PostgreSQL: a session advisory lock on a connection kept for the block. SQLite: an exclusive
    lock on a file beside the database (the database is on this machine).
    """
    engine = database.engine
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            if not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}).scalar():
                raise Busy("another refresh is running (the database's refresh lock is held)")
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                connection.commit()
        return
    path = Path(engine.url.database or "palabre").with_suffix(".refresh.lock")
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another refresh is running (it holds {path})") from None
        yield


def is_running(database: Database) -> bool:
    """Whether a refresh holds the lock now (taken and let go at once when free)."""
    try:
        with one_at_a_time(database):
            return False
    except Busy:
        return True


def refresh(database: Database, registry: Registry, data_paths=(PROJECT_ROOT / "data",), checks_path: Path | None = DEFAULT_CHECKS,
            dry_run: bool = False, progress=lambda message: None, now: datetime | None = None) -> Outcome:
    """Train, judge and (unless dry_run) promote a candidate; raises Busy when another refresh runs."""
    now = now or utcnow()
    with one_at_a_time(database):
        progress("reading the site's decisions and imported history")
        with database.session() as session:
            rows = feedback.gather(session)
        split = feedback.split_by_time(rows)
        progress(f"the site's own comments: {len(split.train)} to learn from, {len(split.recent)} to judge on "
                 f"({split.described}" + (f", from {split.cut:%Y-%m-%d %H:%M} UTC)" if split.cut else ")"))
        active = registry.active()
        judge = _Judge(active, registry.load(active) if active else None, split, dry_run)
        built = build(data_paths, registry, checks_path, progress, site=_sources(split.train, now, progress), judge=judge)
        if judge.passed and not dry_run:
            registry.activate(built.version)
        return Outcome(built.version, active, judge.passed, judge.passed and not dry_run, judge.reasons, judge.comparison)


class _Judge:
    """Both models on the same rows: the comparison, the verdict, and for the report the curves and the overridden comments."""

    def __init__(self, active: str | None, active_scorer, split: feedback.Split, dry_run: bool):
        self.active, self.active_scorer, self.split, self.dry_run = active, active_scorer, split, dry_run
        self.passed, self.reasons, self.comparison = False, [], {}

    def __call__(self, model, held_out, measured: tuple[dict, dict], checks) -> tuple[dict, dict]:
        """What the refresh stores in the candidate's metadata, and each label's (targets, scores) per model and holdout.

        `measured` is the candidate's metrics and probabilities on the holdout, as training took them.
        """
        models = {"candidate": (model.pipelines, model.policy)}
        if self.active_scorer is not None:
            models["active"] = (self.active_scorer.pipelines, self.active_scorer.policy)
        self.comparison, curves = {"holdout": {}, "recent": {}}, {"holdout": {}, "recent": {}}
        for where, frame in (("holdout", held_out), ("recent", self.split.recent)):
            if frame.empty:
                continue
            for name, (pipelines, policy) in models.items():
                if (where, name) == ("holdout", "candidate"):
                    self.comparison[where][name], probabilities = measured
                else:
                    thresholds = {label: t.review for label, t in policy.thresholds.items()}
                    self.comparison[where][name], _, probabilities = evaluate(pipelines, thresholds, frame)
                for label in LABELS:
                    known = frame[label].notna().to_numpy()
                    curves[where].setdefault(label, {})[name] = (frame.loc[known, label].to_numpy(int), probabilities[label][known])
        self.passed, self.reasons = decide(self.comparison, checks, self.active, self.split.described)
        stored = {"judged": self.split.described, "active_before": self.active, "promoted": self.passed and not self.dry_run,
                  "dry_run": self.dry_run, "reasons": self.reasons, "comparison": self.comparison, "site_rows": len(self.split.train),
                  "recent_rows": len(self.split.recent), "cut": self.split.cut.isoformat() if self.split.cut else None,
                  "overridden": self._overridden(models)}
        return stored, curves

    def _overridden(self, models: dict) -> list[dict]:
        """The newest comments moderators overrode the model on, with what each model says of them now."""
        rows = pd.concat([self.split.train, self.split.recent], ignore_index=True)
        rows = rows[rows["override"].astype(bool)].sort_values("at", ascending=False, na_position="last").head(OVERRIDES_SHOWN)
        if rows.empty:
            return []
        rows = rows.reset_index(drop=True)
        said = {name: predict(pipelines, rows) for name, (pipelines, _) in models.items()}
        return [{"text": text[:OVERRIDE_TEXT_CHARS], "at": at.isoformat() if not pd.isna(at) else None,
                 "labels": {label: None if pd.isna(rows.at[index, label]) else float(rows.at[index, label]) for label in LABELS},
                 "scores": {name: {label: round(float(values[label][index]), 4) for label in LABELS} for name, values in said.items()}}
                for index, (text, at) in enumerate(zip(rows["text"], rows["at"]))]


def decide(comparison: dict, checks: dict | None, active: str | None,
           recent: str = "the site's recent decisions") -> tuple[bool, list[str]]:
    """Whether the candidate replaces the active model, and every reason for the verdict; `recent` names the site's judged rows."""
    reasons = []
    allowed = int(CHECKS_TOLERANCE * checks["total"]) if checks and active is not None else 0
    if checks and len(checks["failures"]) > allowed:
        reasons.append(f"the candidate fails {len(checks['failures'])} of {checks['total']} checks of {checks['path']}"
                       f" (at most {allowed} may fail)")
    if active is None:
        return not reasons, reasons or ["no model is active: the candidate passes the checks"]
    better = []
    for where, name in (("holdout", "the data/ holdout"), ("recent", recent)):
        candidate, current = comparison[where].get("candidate", {}), comparison[where].get("active", {})
        for label in LABELS:
            new, old = (candidate.get(label) or {}).get("pr_auc"), (current.get(label) or {}).get("pr_auc")
            if new is None or old is None:
                continue
            if new < old - TOLERANCE:
                reasons.append(f"{label} PR-AUC on {name}: {new:.4f} against the active model's {old:.4f} "
                               f"(more than {TOLERANCE} worse)")
            elif where == "recent" and new > old:
                better.append(f"{label} PR-AUC on {name}: {new:.4f} against {old:.4f}")
    if not better:
        reasons.append(f"the candidate is not better than the active model on any label of {recent}"
                       if comparison["recent"].get("active") else f"{recent}: none with both outcomes to judge on")
    if reasons:
        return False, reasons
    failed = f"{len(checks['failures'])} of {checks['total']} checks fail" if checks and checks["failures"] else "checks pass"
    return True, [f"better: {'; '.join(better)}; not worse by more than {TOLERANCE} PR-AUC elsewhere; {failed}"]


def _sources(frame: pd.DataFrame, now: datetime, progress) -> list[corpora.Source]:
    """The site's rows to learn from (a sample by weight beyond feedback.MAX_ROWS), as training sources, one per kind of row."""
    learnt = feedback.sample(frame, feedback.weights(frame, now))
    if len(learnt) < len(frame):
        progress(f"learning from {len(learnt)} of the site's {len(frame)} rows, drawn by weight")
    sources = []
    for path in feedback.SITE_FILES:
        part = learnt[learnt["file"] == path].drop(columns=["at", "override", "scale"]).reset_index(drop=True)
        if part.empty:
            continue
        digest = hashlib.sha256("\x00".join(f"{t}\x01{a}\x01{b}" for t, a, b in
                                            zip(part["text"], part["toxic"], part["off_topic"])).encode()).hexdigest()
        sources.append(corpora.Source(path, "site", digest, part))
    return sources
