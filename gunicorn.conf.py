"""gunicorn's settings for Palabre, read from the working directory: one metrics folder for all the workers.

Each worker writes its stage timings (moderation/timings.py) to files in PROMETHEUS_MULTIPROC_DIR,
and whichever worker answers /metrics adds them all up. The folder must be empty when the
server starts; without PROMETHEUS_MULTIPROC_DIR a temporary one is made and removed at exit.
"""

import os
import shutil
import tempfile
from pathlib import Path

_made = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="palabre-metrics-")


def on_starting(server):
    """Empty the metrics folder before the first worker starts, so a restart does not count old answers."""
    for leftover in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        leftover.unlink()


def on_exit(server):
    """Remove the metrics folder made here."""
    if _made:
        shutil.rmtree(_made, ignore_errors=True)
