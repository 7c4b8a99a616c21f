"""Comments from concurrent requests received together: one transaction for whatever arrived meanwhile.

A busy site sends comments faster than a small machine commits one transaction each. Each
request thread adds its comment to the process's intake; one of the waiting threads leads: it
takes everything waiting, receives it with `receiving.receive_comments`, hands each result back
and lets the next leader take what arrived meanwhile. An idle server receives batches of one in
the request's own thread, so nobody waits for a batch to fill or for another thread to wake.

Only one batch is received at a time in a process, so the intake keeps one connection for
them all rather than taking one from the pool (and pinging it) for each; a connection the
database dropped is replaced and the batch tried once more on the new one. The site's settings
are read at most every SETTINGS_SECONDS, so a batch costs only the statements that store it; a
change in the admin pages holds at once in the process that made it, within seconds in the others.
"""

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from . import settings
from .database import Database
from .receiving import IncomingComment, Received, RecentArticles, receive_comments
from .scorer import Scorer
from .timings import timed

MAX_BATCH = 100
SETTINGS_SECONDS = 2.0


@dataclass(eq=False)
class _Handed:
    """One comment waiting in the intake, then what became of it."""

    incoming: IncomingComment
    reading: Callable[[Scorer], Scorer] | None
    outcome: Received | BaseException | None = None
    done: bool = False


class Intake:
    """Receives comments handed over by many threads, a batch at a time, led by one of them."""

    def __init__(self, database: Database, scorer: Callable[[], Scorer], max_batch: int = MAX_BATCH):
        self._database = database
        self._scorer = scorer
        self._max_batch = max_batch
        self._changed = threading.Condition()
        self._waiting: list[_Handed] = []
        self._leading = False
        self._site: tuple[float, settings.SiteSettings] | None = None
        self._articles = RecentArticles()
        self._kept: list[Connection] = []  # the leaders' connection, kept between batches: none or one
        weakref.finalize(self, _discard, self._kept)

    def forget_settings(self) -> None:
        """Read the site's settings again for the next batch (after an admin changed them in this process)."""
        self._site = None

    def forget_articles(self) -> None:
        """Read articles again for the next batch (after pre-moderation was switched in this process)."""
        self._articles.forget()

    def receive(self, incoming: IncomingComment, reading: Callable[[Scorer], Scorer] | None = None) -> Received:
        """Receive one comment with whatever else is arriving; raises what receive_comment raises.

        `reading` wraps the serving scorer for comments that need another reading of their text
        (Coral's HTML); comments are batched only with others read the same way.
        """
        with timed("intake"):
            return self._receive_handed(_Handed(incoming, reading))

    def _receive_handed(self, handed: _Handed) -> Received:
        """Wait for a leader to receive the comment, or lead a batch; what became of it."""
        with self._changed:
            self._waiting.append(handed)
        while True:
            with self._changed:
                while self._leading and not handed.done:
                    self._changed.wait()
                if handed.done:
                    break
                self._leading = True
                batch = [item for item in self._waiting if item.reading is handed.reading][:self._max_batch]
                taken = set(map(id, batch))
                self._waiting = [item for item in self._waiting if id(item) not in taken]
            try:
                self._receive(handed.reading, batch)
            finally:
                with self._changed:
                    self._leading = False
                    self._changed.notify_all()
        if isinstance(handed.outcome, BaseException):
            raise handed.outcome
        return handed.outcome

    def _receive(self, reading, batch: list[_Handed]) -> None:
        """Receive comments read the same way in one call and record what became of each."""
        incomings = [item.incoming for item in batch]
        try:
            scorer = self._scorer()
            scorer = reading(scorer) if reading else scorer
            try:
                results = self._receive_on_connection(scorer, incomings)
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                results = self._receive_on_connection(scorer, incomings)  # the kept connection had gone stale
        except BaseException as error:  # the database or the model failed: every request in the batch hears it
            results = [error] * len(batch)
        for item, result in zip(batch, results):
            item.outcome, item.done = result, True

    def _receive_on_connection(self, scorer: Scorer, incomings: list[IncomingComment]) -> list:
        """receive_comments on the kept connection (made when there is none), dropped if the database fails under it."""
        if self._kept and (self._kept[0].closed or self._kept[0].invalidated):
            self._kept.clear()
        if not self._kept:
            with timed("connect"):
                self._kept.append(self._database.engine.connect())
        connection = self._kept[0]
        try:
            with timed("batch"):
                return receive_comments(connection, scorer, incomings, site=self._settings(connection), recent=self._articles)
        except DBAPIError:
            self._kept.clear()
            connection.close()
            raise
        finally:
            if connection.in_transaction():
                connection.rollback()  # only the settings were read: no transaction stays open between batches

    def _settings(self, connection: Connection) -> settings.SiteSettings:
        """The site's settings, read at most every SETTINGS_SECONDS."""
        if self._site is None or self._site[0] <= time.monotonic():
            self._site = (time.monotonic() + SETTINGS_SECONDS, settings.current(connection))
        return self._site[1]


def _discard(kept: list[Connection]) -> None:
    """Close the kept connection for good when its intake goes (its pool may be gone already)."""
    for connection in kept:
        connection.invalidate()
