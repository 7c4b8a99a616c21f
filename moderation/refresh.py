"""The weekly refresh: a candidate trained on data/ and the site's own decisions, promoted only if it is not worse.

The candidate and the active model are judged on the same rows: the fixed holdout of `data/`
and the site's newest decisions, which the candidate never learnt from (`feedback.split_by_time`).
The candidate is promoted when it passes every check of `data/checks.csv`, its PR-AUC on each
label is within TOLERANCE of the active model's on both, and it is better than the active model
on the site's newest decisions. Either way it is saved, with the verdict and its reasons signed
in its metadata; only promotion moves the active pointer, in one rename, so a refresh killed at
any moment leaves the active model serving. One refresh runs at a time across every process and
machine sharing the database (`one_at_a_time`).
"""

import fcntl
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import text

from . import corpora, feedback
from .build import DEFAULT_CHECKS, build
from .corpora import LABELS
from .database import Database, utcnow
from .evaluation import evaluate
from .registry import PROJECT_ROOT, Registry

TOLERANCE = 0.01  # PR-AUC a candidate may lose on a label and still be "not worse"
LOCK_KEY = 0x70616C6272  # PostgreSQL advisory lock of the refresh ("palbr")


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
        with database.session() as session:
            rows = feedback.gather(session)
        split = feedback.split_by_time(rows)
        progress(f"the site's own comments: {len(split.train)} to learn from, {len(split.recent)} recent decisions to judge on"
                 + (f" (from {split.cut:%Y-%m-%d %H:%M} UTC)" if split.cut else ""))
        active = registry.active()
        active_scorer = registry.load(active) if active else None
        verdict = {}

        def judge(model, held_out, holdout_metrics, checks):
            """Both models on the same rows, and whether the candidate may replace the active one."""
            thresholds = {label: t.review for label, t in model.policy.thresholds.items()}
            comparison = {"holdout": {"candidate": holdout_metrics}, "recent": {}}
            if len(split.recent):
                comparison["recent"]["candidate"] = evaluate(model.pipelines, thresholds, split.recent)[0]
            if active_scorer is not None:
                active_thresholds = {label: t.review for label, t in active_scorer.policy.thresholds.items()}
                comparison["holdout"]["active"] = evaluate(active_scorer.pipelines, active_thresholds, held_out)[0]
                if len(split.recent):
                    comparison["recent"]["active"] = evaluate(active_scorer.pipelines, active_thresholds, split.recent)[0]
            promoted, reasons = decide(comparison, checks, active)
            verdict.update(promoted=promoted, reasons=reasons, comparison=comparison)
            return {"active_before": active, "promoted": promoted and not dry_run, "dry_run": dry_run, "reasons": reasons,
                    "comparison": comparison, "site_rows": len(split.train), "recent_rows": len(split.recent),
                    "cut": split.cut.isoformat() if split.cut else None}

        built = build(data_paths, registry, checks_path, progress, site=_sources(split.train, now), judge=judge)
        if verdict["promoted"] and not dry_run:
            registry.activate(built.version)
        return Outcome(built.version, active, verdict["promoted"], verdict["promoted"] and not dry_run, verdict["reasons"],
                       verdict["comparison"])


def decide(comparison: dict, checks: dict | None, active: str | None) -> tuple[bool, list[str]]:
    """Whether the candidate replaces the active model, and every reason for the verdict."""
    reasons = []
    if checks and checks["failures"]:
        reasons.append(f"the candidate fails {len(checks['failures'])} of {checks['total']} checks of {checks['path']}")
    if active is None:
        return not reasons, reasons or ["no model is active: the candidate passes the checks"]
    better = []
    for where, name in (("holdout", "the data/ holdout"), ("recent", "the site's recent decisions")):
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
        reasons.append("the candidate is not better than the active model on any label of the site's recent decisions"
                       if comparison["recent"].get("active") else "no recent moderator decisions with both outcomes to judge on")
    if reasons:
        return False, reasons
    return True, [f"better: {'; '.join(better)}; not worse by more than {TOLERANCE} PR-AUC elsewhere; checks pass"]


def _sources(frame, now: datetime) -> list[corpora.Source]:
    """The site's rows to learn from, as training sources with their own weights (one per kind of row)."""
    sources = []
    for path in feedback.SITE_FILES:
        part = frame[frame["file"] == path].reset_index(drop=True)
        if part.empty:
            continue
        part = part.assign(row_weight=feedback.weights(part, now)).drop(columns=["at", "override"])
        digest = hashlib.sha256("\x00".join(f"{t}\x01{a}\x01{b}" for t, a, b in
                                            zip(part["text"], part["toxic"], part["off_topic"])).encode()).hexdigest()
        sources.append(corpora.Source(path, "site", digest, part))
    return sources
