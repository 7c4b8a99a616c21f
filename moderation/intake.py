"""Comments from concurrent requests received together: one transaction for whatever arrived meanwhile.

A busy site sends comments faster than a small machine commits one transaction each. Each
request thread hands its comment over and waits; one thread takes everything waiting, receives
it with `service.receive_comments`, and hands each result back. An idle server receives batches
of one, so nobody waits for a batch to fill.
"""

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from .database import Database
from .scorer import Scorer
from .service import IncomingComment, Received, receive_comments
from .validation import InputError

MAX_BATCH = 100


class Intake:
    """Receives comments handed over by many threads, a batch at a time, in a thread of its own."""

    def __init__(self, database: Database, scorer: Callable[[], Scorer], max_batch: int = MAX_BATCH):
        self._database = database
        self._scorer = scorer
        self._max_batch = max_batch
        self._waiting: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start = threading.Lock()

    def receive(self, incoming: IncomingComment, reading: Callable[[Scorer], Scorer] | None = None) -> Received:
        """Receive one comment with whatever else is arriving; raises what receive_comment raises.

        `reading` wraps the serving scorer for comments that need another reading of their text
        (Coral's HTML); comments are batched only with others read the same way.
        """
        self._ensure_worker()
        handed: Future = Future()
        self._waiting.put((incoming, reading, handed))
        return handed.result()

    def _ensure_worker(self) -> None:
        """Start the receiving thread in this process on first use (after a server forks its workers)."""
        if self._worker is None or not self._worker.is_alive():
            with self._start:
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(target=self._run, name="palabre-intake", daemon=True)
                    self._worker.start()

    def _run(self) -> None:
        """Take what waits, up to a batch, and receive it; forever."""
        while True:
            batch = [self._waiting.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            by_reading: dict = {}
            for item in batch:
                by_reading.setdefault(item[1], []).append(item)
            for reading, items in by_reading.items():
                self._receive(reading, items)

    def _receive(self, reading, items: list) -> None:
        """Receive comments read the same way in one call and resolve each waiting request."""
        try:
            scorer = self._scorer()
            with self._database.session() as session:
                results = receive_comments(session, reading(scorer) if reading else scorer, [item[0] for item in items])
        except BaseException as error:  # the database or the model failed: every request in the batch hears it
            for _, _, handed in items:
                handed.set_exception(error)
            return
        for (_, _, handed), result in zip(items, results):
            if isinstance(result, InputError):
                handed.set_exception(result)
            else:
                handed.set_result(result)
