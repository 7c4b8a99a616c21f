"""The command line: `python -m moderation COMMAND`."""

import functools
import gc
import json
import os
import signal
import sys
import threading
from datetime import UTC
from pathlib import Path
from select import select as fd_select

import click
import numpy as np
from sqlalchemy import select

from . import corpora, history, refresh, schedule, webhooks
from .api.clients import create_client
from .auth.models import MIN_PASSWORD, MODERATOR, ROLES, User, canonical_username, username_problem
from .build import DEFAULT_CHECKS, Progress, build
from .corpora import LABELS, DataError
from .database import Database, utcnow
from .demo import DATA, load_demo
from .evaluation import evaluate
from .registry import Registry, RegistryError
from .report import metrics_table
from .splits import holdout_batches, holdout_mask
from .validation import InputError

MAX_LINE_BYTES = 4 * 1024 * 1024
# Lines of `score` read and scored together, and the most bytes they may hold, so memory stays flat on any input.
CHUNK_LINES = 256
CHUNK_BYTES = 16 * 1024 * 1024


def _registry() -> Registry:
    """The registry in MODERATION_MODELS_DIR (default models/)."""
    return Registry()


def _fail_clearly(function):
    """Turn the engine's refusals into a one-line error and exit status 1, never a traceback."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (DataError, RegistryError, InputError, schedule.ScheduleError) as error:
            raise click.ClickException(str(error)) from None
    return wrapper


@click.group()
def main():
    """Palabre: score, train and manage comment-moderation models."""


@main.command("train")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(path_type=Path),
              help="A data file or folder; repeat for several.")
@click.option("--activate", is_flag=True, help="Make the new version active if it passes the checks.")
@click.option("--checks", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=DEFAULT_CHECKS, show_default=True,
              help="Must-flag / must-pass list the model is checked against.")
@_fail_clearly
def train_command(data, activate, checks):
    """Train a new model version from labelled data."""
    registry = _registry()
    built = build(list(data), registry, checks, Progress(lambda line: click.echo(line, err=True)))
    click.echo(f"version {built.version}")
    click.echo("\n".join(metrics_table(built.metadata["metrics"]["holdout"])))
    for failure in (built.metadata.get("checks") or {}).get("failures", []):
        click.echo(f"check failed: {failure['label']} should {failure['expect']} ({failure['case']}), "
                   f"score {failure['score']} vs {failure['threshold']}: {failure['text'][:100]}", err=True)
    click.echo(f"report: {registry.root / built.version / 'report.md'}")
    if activate:
        if not built.checks_passed:
            raise click.ClickException(f"{built.version} failed checks from {checks}; not activated")
        registry.activate(built.version)
        click.echo(f"activated {built.version}")


@main.command("evaluate")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(path_type=Path))
@click.option("--model", "version", default=None, help="Version to evaluate (default: the active one).")
@click.option("--split", type=click.Choice(["auto", "holdout", "all"]), default="auto", show_default=True,
              help="auto: held-out rows of files the model was trained on, every row of other files.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@_fail_clearly
def evaluate_command(data, version, split, as_json):
    """Per-label metrics of a model on labelled data."""
    scorer = _registry().load(version)
    trained_on = {entry["sha256"] for entry in scorer.metadata["training_data"]}
    dataset = corpora.load(list(data))
    keep, used = np.zeros(len(dataset.frame), dtype=bool), []
    held_out, whole = holdout_mask(dataset.frame), holdout_batches(dataset.frame)
    for source in dataset.sources:
        rows = (dataset.frame["file"] == source.path).to_numpy()
        only_holdout = split == "holdout" or (split == "auto" and source.sha256 in trained_on)
        if only_holdout:
            rows = rows & held_out
        keep = keep | rows
        kind = ("holdout, whole batch" if source.path in whole else "holdout") if only_holdout else "all"
        used.append({"path": source.path, "format": source.format, "rows": int(rows.sum()), "split": kind})
    if not keep.any():
        raise click.ClickException("no rows to evaluate")
    thresholds = {label: t.review for label, t in scorer.policy.thresholds.items()}
    overall, by_source, _ = evaluate(scorer.pipelines, thresholds, dataset.frame[keep].reset_index(drop=True))
    if as_json:
        click.echo(json.dumps({"model": scorer.version, "data": used, "metrics": overall, "by_source": by_source}, indent=2))
        return
    click.echo(f"model {scorer.version}")
    for entry in used:
        click.echo(f"  {entry['path']} ({entry['format']}): {entry['rows']} rows ({entry['split']})")
    whole_batches = sorted(Path(entry["path"]).stem for entry in used if entry["split"] == "holdout, whole batch")
    if whole_batches:
        click.echo(f"writing batches held out whole (no model learns from any of their rows): {', '.join(whole_batches)}")
    click.echo("\nall data\n" + "\n".join(metrics_table(overall)))
    for path, metrics in by_source.items():
        click.echo(f"\n{path}\n" + "\n".join(metrics_table(metrics)))


@main.command("score")
@click.option("--model", "version", default=None, help="Version to score with (default: the active one).")
@_fail_clearly
def score_command(version):
    """Score JSON lines from stdin: {"id", "text", "article": {"title", "body"}} -> one JSON line each."""
    scorer = _registry().load(version)
    gc.freeze()  # the model and the libraries last as long as the command: the collector need not walk them at every chunk
    for chunk in _chunks(sys.stdin.buffer):
        try:
            sys.stdout.write("".join(_dumps(result) + "\n" for result in _score_chunk(scorer, chunk)))
            sys.stdout.flush()
        except BrokenPipeError:
            sys.stderr.close()
            return


def _chunks(stdin):
    """(number, line) pairs, CHUNK_LINES at a time, fewer when no more input is ready: a trickle of lines is answered as
    it comes, a file or a full pipe in batches; a line over MAX_LINE_BYTES comes as None, its rest skipped."""
    chunk, size, number = [], 0, 0
    while line := stdin.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := stdin.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            line = None
        chunk.append((number, line))
        size += len(line or b"")
        if len(chunk) == CHUNK_LINES or size >= CHUNK_BYTES or not _ready(stdin):
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _ready(stream) -> bool:
    """Whether more input has come (or the input has ended), so reading on would not wait; always, off a pipe or terminal."""
    try:
        return bool(fd_select([stream], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _score_chunk(scorer, chunk: list[tuple[int, bytes | None]]) -> list[dict]:
    """One output record per input line, in order: the good lines scored together, the others' errors in their place."""
    read = [_read_line(line, number) for number, line in chunk]
    scored = iter(scorer.score_many([record["comment"] for record in read if "comment" in record], return_errors=True))
    return [_output(record["id"], next(scored)) if "comment" in record else record for record in read]


def _output(identifier, result: dict | InputError) -> dict:
    """A scored line's record: its id and scores, or its id and why the comment was refused."""
    return {"id": identifier, "error": str(result)} if isinstance(result, InputError) else {"id": identifier, **result}


def _read_line(line: bytes | None, number: int) -> dict:
    """{"id", "comment"} for score_many, or an output record with the error that says what is wrong with the line."""
    if line is None:
        return {"id": None, "error": f"line {number} is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB"}
    try:
        record = json.loads(line.decode("utf-8-sig" if number == 1 else "utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as error:
        return {"id": None, "error": f"line {number} is not UTF-8 (byte {error.start})"}
    except json.JSONDecodeError as error:
        return {"id": None, "error": f"line {number} is not valid JSON: {error.msg} at column {error.colno}"}
    except (ValueError, RecursionError) as error:
        return {"id": None, "error": f"line {number} cannot be read as JSON: {str(error)[:200] or type(error).__name__}"}
    if not isinstance(record, dict):
        return {"id": None, "error": f"line {number} must be a JSON object, not {type(record).__name__}"}
    return {"id": record.get("id"), "comment": {"text": record.get("text"), "article": record.get("article")}}


def _refuse_constant(name: str):
    """NaN and Infinity are not JSON; echoing them back would break the reader of the output."""
    raise ValueError(f"{name} is not a JSON value")


def _dumps(result: dict) -> str:
    """Readable JSON; escaped if an echoed id holds characters UTF-8 cannot carry."""
    text = json.dumps(result, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(result, allow_nan=False)
    return text


@main.group("models")
def models_group():
    """List, activate and roll back model versions."""


@models_group.command("list")
@_fail_clearly
def models_list():
    """Every version with its held-out PR-AUC and checks; * marks the active one."""
    versions = _registry().versions()
    if not versions:
        click.echo("no model versions yet; train one with: python -m moderation train --data data --activate")
        return
    click.echo(f"  {'version':<20} {'created':<26} {'toxic PR-AUC':>12} {'off_topic PR-AUC':>16}  checks")
    for metadata in versions:
        holdout = metadata.get("metrics", {}).get("holdout", {})
        scores = [str(holdout.get(label, {}).get("pr_auc", "-")) for label in LABELS]
        checks = metadata.get("checks") or {}
        passed = f"{checks['passed']}/{checks['total']}" if checks else "-"
        marker = "*" if metadata["active"] else " "
        click.echo(f"{marker} {metadata.get('version', '?'):<20} {metadata.get('created_at', '?'):<26} {scores[0]:>12} {scores[1]:>16}  {passed}")


@models_group.command("activate")
@click.argument("version")
@_fail_clearly
def models_activate(version):
    """Make VERSION the active model (verified first)."""
    _registry().activate(version)
    click.echo(f"activated {version}")


@models_group.command("rollback")
@_fail_clearly
def models_rollback():
    """Re-activate the version that was active before the current one."""
    click.echo(f"rolled back to {_registry().rollback()}")


@main.command("init-db")
@_fail_clearly
def init_db_command():
    """Create or migrate the database (MODERATION_DATABASE_URL, default SQLite in instance/)."""
    database = Database()
    database.upgrade()
    click.echo(f"database ready: {database.engine.url.render_as_string(hide_password=True)}")


@main.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default=MODERATOR, show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin instead of a prompt.")
@_fail_clearly
def create_user_command(name, role, password_stdin):
    """Create a moderator or admin account."""
    problem = username_problem(name)
    if problem:
        raise click.ClickException(problem)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"the password must have at least {MIN_PASSWORD} characters")
    database = Database()
    database.upgrade()
    with database.session() as session:
        if session.scalar(select(User).where(User.username == canonical_username(name))) is not None:
            raise click.ClickException(f"the username {name!r} is taken")
        user = User(username=name, role=role)
        user.set_password(password)
        session.add(user)
        session.commit()
    click.echo(f"created {role} {name}")


@main.command("demo")
@_fail_clearly
def demo_command():
    """Load the demo articles and comments from data/ (scored by the active model; safe to run twice)."""
    database = Database()
    database.upgrade()
    with database.session() as session:
        count = load_demo(session, _registry().load(), utcnow(), Progress(lambda line: click.echo(line, err=True)))
    click.echo(f"demo: {count} comments received")


@main.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@_fail_clearly
def import_command(path):
    """Import a site's past moderation (CSV, TSV or JSON lines: text with labels or a decision) for the refresh."""
    read = history.read(path)
    database = Database()
    database.upgrade()
    with database.session() as session:
        imported = history.store(session, read)
        session.commit()
    if imported.earlier is not None:
        click.echo(f"{path} was imported on {imported.earlier.imported_at:%Y-%m-%d %H:%M} UTC ({imported.earlier.rows} comments, "
                   "same sha256): nothing imported")
        return
    click.echo(f"imported {path} ({read.format}): {read.summary()}")


@main.command("export")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="Only decisions taken from this UTC date (or date and time) on.")
@_fail_clearly
def export_command(since):
    """Write every comment a moderator decided as JSON lines on stdout, in the shape `import` reads."""
    database = Database()
    database.upgrade()
    with database.session() as session:
        for record in history.exported(session, since.replace(tzinfo=UTC) if since else None):
            click.echo(json.dumps(record, ensure_ascii=False))


@main.command("refresh")
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path), default=[DATA], show_default="data/",
              help="Data files or folders learnt from beside the site's own decisions and history.")
@click.option("--checks", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=DEFAULT_CHECKS, show_default=True,
              help="Must-flag / must-pass examples the candidate has to pass.")
@click.option("--dry-run", is_flag=True, help="Train and judge a candidate, save it with its verdict, activate nothing.")
@_fail_clearly
def refresh_command(data, checks, dry_run):
    """Retrain on data/ and the moderators' decisions; promote the candidate only if it is not worse."""
    database = Database()
    database.upgrade()
    _refresh_and_say(database, data, checks, dry_run)


def _refresh_and_say(database: Database, data, checks, dry_run: bool) -> None:
    """One refresh, its progress on stderr and its verdict on stdout; another one running is said and is no error."""
    try:
        outcome = refresh.refresh(database, _registry(), data, checks, dry_run, Progress(lambda line: click.echo(line, err=True)))
    except refresh.Busy as busy:
        click.echo(f"{busy}: nothing done")
        return
    verdict = ("promoted: now active" if outcome.promoted else "passed, not activated (dry run)" if outcome.passed
               else f"kept {outcome.active_before or 'no model'} active")
    click.echo(f"candidate {outcome.version}: {verdict}")
    for reason in outcome.reasons:
        click.echo(f"  {reason}")


@main.command("scheduler")
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path), default=[DATA], show_default="data/",
              help="As for refresh.")
@click.option("--checks", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=DEFAULT_CHECKS, show_default=True,
              help="As for refresh.")
@_fail_clearly
def scheduler_command(data, checks):
    """Run the refresh at every moment of MODERATION_REFRESH_CRON (default Monday 03:00) in MODERATION_TIMEZONE."""
    expression, zone = schedule.from_environment()
    database = Database()
    database.upgrade()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        schedule.run_forever(lambda: _refresh_and_say(database, data, checks, False), expression, zone, stop,
                             lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        pass
    click.echo("scheduler stopped", err=True)


@main.command("create-client")
@click.argument("name")
@click.option("--webhook-url", default=None, help="Where decisions are POSTed (https://...).")
@_fail_clearly
def create_client_command(name, webhook_url):
    """Create an API client; its key is printed once, alone on the last line."""
    database = Database()
    database.upgrade()
    with database.session() as session:
        client, key = create_client(session, name, webhook_url)
        click.echo(f"created API client {client.name}")
        click.echo(f"webhook signing secret (also shown in Admin > API clients): {client.webhook_secret}")
        click.echo("API key, shown only now; store it in the comment system:")
    click.echo(key)


@main.command("deliver")
@click.option("--once", is_flag=True, help="Try every due webhook once and exit (default: keep delivering).")
@click.option("--nice", "niceness", type=click.IntRange(0, 19), default=10, show_default=True,
              help="Lower this worker's CPU priority by N (Unix; 0 keeps it), so a web server on the same machine "
                   "is served first and events wait instead.")
@_fail_clearly
def deliver_command(once, niceness):
    """Deliver webhook events from the outbox, retrying failures for 24 hours."""
    if niceness and hasattr(os, "nice"):
        os.nice(niceness)
    database = Database()
    database.upgrade()
    if once:
        click.echo(f"delivered {webhooks.deliver_due(database)} webhook events")
        return
    click.echo("delivering webhook events; Ctrl-C to stop", err=True)
    stop = threading.Event()
    try:
        webhooks.run(database, stop)
    except KeyboardInterrupt:
        stop.set()
