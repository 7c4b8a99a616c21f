"""Where an answer's time goes: the stages the app times itself, as Prometheus histograms and CPU counters.

Each stage (the whole answer, reading the JSON, waiting in the intake, scoring, each SQL
statement's round trip, the commit, writing the JSON) records its wall time in
`palabre_stage_seconds` and the CPU its thread spent in `palabre_stage_cpu_seconds_total`.
Under gunicorn the workers share them through PROMETHEUS_MULTIPROC_DIR (set by
gunicorn.conf.py), so /metrics counts every worker's answers whichever worker serves it.

A request thread only appends its timing to a queue: the metric files are written under one
lock per process, which request threads would queue for. A thread of each process moves the
queue into the metrics every FLUSH_SECONDS, and /metrics moves its own process's first.
"""

import os
import re
import threading
import time
from collections import deque
from functools import lru_cache

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from sqlalchemy import event
from sqlalchemy.engine import Engine

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
FLUSH_SECONDS = 0.5
STAGE_OPTION = "palabre_stage"  # a statement's execution option naming its stage, where its text alone is ambiguous
REGISTRY = CollectorRegistry()
_SECONDS = Histogram("palabre_stage_seconds", "Wall time of each stage of answering, by stage.", ["stage"],
                     buckets=BUCKETS, registry=REGISTRY)
_CPU = Counter("palabre_stage_cpu_seconds", "CPU time the answering thread spent in each stage, by stage.", ["stage"],
               registry=REGISTRY)
_STATEMENT = re.compile(r"\b(INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", re.IGNORECASE)
_SELECTED = re.compile(r"\bFROM\s+\"?(\w+)", re.IGNORECASE)
_STARTED = "palabre.statement_started"
_pending: deque = deque()  # (stage, seconds, CPU seconds) not yet in the metrics; appending needs no lock
_flushing = {"pid": None, "lock": threading.Lock()}


@lru_cache(maxsize=256)
def _children(stage: str):
    """The histogram and counter of one stage (looked up once: a label lookup takes a lock)."""
    return _SECONDS.labels(stage), _CPU.labels(stage)


def record(stage: str, seconds: float, cpu_seconds: float) -> None:
    """Count one pass through a stage (in the metrics within FLUSH_SECONDS)."""
    _pending.append((stage, seconds, cpu_seconds))
    if _flushing["pid"] != os.getpid():
        _start_flushing()


def _start_flushing() -> None:
    """Start this process's flushing thread (again in a forked child, where the parent's thread does not run)."""
    with _flushing["lock"]:
        if _flushing["pid"] != os.getpid():
            _flushing["pid"] = os.getpid()
            threading.Thread(target=_flush_forever, name="palabre-timings", daemon=True).start()


def _flush_forever() -> None:
    """Flush every FLUSH_SECONDS for as long as the process lives."""
    while True:
        time.sleep(FLUSH_SECONDS)
        flush()


def flush() -> None:
    """Move the timings recorded so far into the metrics."""
    while True:
        try:
            stage, seconds, cpu_seconds = _pending.popleft()
        except IndexError:
            return
        histogram, counter = _children(stage)
        histogram.observe(seconds)
        counter.inc(max(cpu_seconds, 0.0))


class timed:  # noqa: N801 - used as a function: `with timed("score"):`
    """Time the block as one pass through `stage`, even when it raises (a class: a generator costs twice as much)."""

    __slots__ = ("stage", "wall", "cpu")

    def __init__(self, stage: str):
        self.stage = stage

    def __enter__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.thread_time()

    def __exit__(self, *raised) -> None:
        record(self.stage, time.perf_counter() - self.wall, time.thread_time() - self.cpu)


def time_statements(engine: Engine) -> None:
    """Time every statement the engine sends, from the driver's send to its parsed answer, named by what it does."""
    event.listen(engine, "before_cursor_execute", _before_statement)
    event.listen(engine, "after_cursor_execute", _after_statement)


def _before_statement(connection, cursor, statement, parameters, context, executemany) -> None:
    """Note when the statement left, on its connection (used by one thread at a time)."""
    connection.info[_STARTED] = (time.perf_counter(), time.thread_time())


def _after_statement(connection, cursor, statement, parameters, context, executemany) -> None:
    """Record the statement's round trip under its stage."""
    started = connection.info.pop(_STARTED, None)
    if started is not None:
        named = context.execution_options.get(STAGE_OPTION) if context is not None else None
        record(named or statement_stage(statement), time.perf_counter() - started[0], time.thread_time() - started[1])


@lru_cache(maxsize=512)
def statement_stage(statement: str) -> str:
    """'sql insert comments', 'sql select articles', ...: what a statement does to which table."""
    written = _STATEMENT.search(statement)
    if written:
        return f"sql {written.group(1).split()[0].lower()} {written.group(2).lower()}"
    selected = _SELECTED.search(statement)
    return f"sql select {selected.group(1).lower()}" if selected else "sql other"


def exposition() -> bytes:
    """The stage metrics in Prometheus's text format: every worker's when they share a folder, else this process's."""
    flush()
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return generate_latest(REGISTRY)
    shared = CollectorRegistry()
    multiprocess.MultiProcessCollector(shared, folder)
    return generate_latest(shared)
