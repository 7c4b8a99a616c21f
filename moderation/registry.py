"""The model registry: versioned folders under models/, one atomic pointer to the active version.

A joblib file can run code when loaded, so the registry loads only what it wrote itself:
metadata.json carries the sha256 of model.joblib and an HMAC signature made with this
installation's secret key, and both are checked (with the library versions) before loading.
"""

import gc
import hashlib
import hmac
import io
import json
import os
import platform
import secrets
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy
import scipy
import sklearn

from .policy import Policy
from .scorer import Scorer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POINTER = "active.json"
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
TRAIN_HINT = "train one with: python -m moderation train --data data --activate"


class RegistryError(Exception):
    """A version that cannot be used, with the reason in the message."""


class NoModelError(RegistryError):
    """There is no active model yet."""


def library_versions() -> dict[str, str]:
    """Versions a saved model depends on: loading across them is unsupported by scikit-learn."""
    return {
        "python": ".".join(platform.python_version_tuple()[:2]),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
    }


def default_models_dir() -> Path:
    """MODERATION_MODELS_DIR, else models/ in the project."""
    return Path(os.environ.get("MODERATION_MODELS_DIR") or PROJECT_ROOT / "models")


def signing_key() -> bytes:
    """MODERATION_SECRET_KEY, else a key generated once into instance/secret_key."""
    configured = os.environ.get("MODERATION_SECRET_KEY")
    if configured:
        return configured.encode()
    path = PROJECT_ROOT / "instance" / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, secrets.token_hex(32).encode(), mode=0o600)
    return path.read_bytes().strip()


def _signature(metadata: dict, key: bytes) -> str:
    """HMAC-SHA256 over the canonical JSON of the metadata without its signature."""
    unsigned = {k: v for k, v in metadata.items() if k != "signature"}
    payload = json.dumps(unsigned, sort_keys=True, ensure_ascii=True).encode()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write to a temporary file beside path, then rename over it: readers see old or new, never half."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class Registry:
    """Model versions in one folder shared by every process that scores."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root else default_models_dir()

    def _pointer(self) -> dict:
        """The active version and the stack of versions active before it."""
        try:
            pointer = json.loads((self.root / POINTER).read_text())
        except FileNotFoundError:
            return {"version": None, "previous": []}
        except (OSError, ValueError) as error:
            raise RegistryError(f"{self.root / POINTER} is unreadable ({error}); run: python -m moderation models activate VERSION") from None
        if not isinstance(pointer, dict):
            raise RegistryError(f"{self.root / POINTER} is not a pointer object; run: python -m moderation models activate VERSION")
        return pointer

    def active(self) -> str | None:
        """The version every process should be serving, or None."""
        return self._pointer().get("version")

    def versions(self) -> list[dict]:
        """Metadata of every version, oldest first, each marked active or not."""
        active = self.active() if (self.root / POINTER).exists() else None
        found = []
        for folder in sorted(self.root.glob("*/")) if self.root.exists() else []:
            if folder.name.startswith(".") or not (folder / METADATA_FILE).exists():
                continue
            try:
                metadata = json.loads((folder / METADATA_FILE).read_text())
            except ValueError:
                metadata = {"version": folder.name, "error": "metadata.json is not valid JSON"}
            metadata["active"] = folder.name == active
            found.append(metadata)
        return found

    def new_version(self) -> str:
        """A sortable, unused version name from the current UTC time."""
        base = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        version, counter = base, 1
        while (self.root / version).exists():
            counter += 1
            version = f"{base}-{counter}"
        return version

    def save(self, version: str, payload: dict, metadata: dict, write_extras=None) -> Path:
        """Write a version's folder completely, then rename it into place; returns the folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".incomplete-{version}-{os.getpid()}"
        staging.mkdir()
        try:
            joblib.dump(payload, staging / MODEL_FILE)
            digest = hashlib.sha256((staging / MODEL_FILE).read_bytes()).hexdigest()
            metadata = dict(metadata, version=version, model_file=MODEL_FILE, model_sha256=digest)
            metadata["libraries"] = library_versions()
            metadata["signature"] = _signature(metadata, signing_key())
            (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
            if write_extras:
                write_extras(staging, metadata)
            os.rename(staging, self.root / version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.root / version

    def verify(self, version: str) -> dict:
        """Metadata of a version after checking its signature, checksum and library versions."""
        return self._verified(version)[0]

    def _verified(self, version: str) -> tuple[dict, bytes]:
        """Checked metadata and the model bytes that were checked: loading re-reads nothing."""
        folder = self.root / version
        if not version or "/" in version or version.startswith(".") or not folder.is_dir():
            raise RegistryError(f"no model version '{version}' in {self.root}")
        try:
            metadata = json.loads((folder / METADATA_FILE).read_text())
        except (OSError, ValueError) as error:
            raise RegistryError(f"model {version}: metadata.json is missing or unreadable ({error})") from None
        if not isinstance(metadata, dict) or not hmac.compare_digest(
            str(metadata.get("signature", "")).encode("utf-8", "replace"), _signature(metadata, signing_key()).encode()
        ):
            raise RegistryError(
                f"model {version}: metadata.json is not signed by this installation's key "
                "(MODERATION_SECRET_KEY or instance/secret_key); refusing to load it"
            )
        model_path = folder / MODEL_FILE
        if not model_path.exists():
            raise RegistryError(f"model {version}: {MODEL_FILE} is missing")
        content = model_path.read_bytes()
        actual = hashlib.sha256(content).hexdigest()
        if actual != metadata.get("model_sha256"):
            raise RegistryError(
                f"model {version}: {MODEL_FILE} has sha256 {actual[:12]}…, metadata.json says "
                f"{str(metadata.get('model_sha256'))[:12]}…; the file was changed after training, refusing to load it"
            )
        expected, installed = metadata.get("libraries", {}), library_versions()
        different = [f"{name} {expected.get(name)} (installed {installed[name]})" for name in installed if expected.get(name) != installed[name]]
        if different:
            raise RegistryError(f"model {version} was built with {', '.join(different)}; retrain it with this install")
        return metadata, content

    def load(self, version: str | None = None) -> Scorer:
        """A scorer for a verified version (the active one by default)."""
        version = version or self.active()
        if version is None:
            raise NoModelError(f"no active model in {self.root}; {TRAIN_HINT}")
        metadata, content = self._verified(version)
        payload = joblib.load(io.BytesIO(content))
        return Scorer(payload["pipelines"], Policy.from_dict(metadata["thresholds"]), version, metadata)

    def activate(self, version: str) -> None:
        """Make a verified version the active one for every process, atomically."""
        self.load(version)
        pointer = self._pointer()
        if pointer.get("version") == version:
            return
        previous = pointer.get("previous", []) + ([pointer["version"]] if pointer.get("version") else [])
        self._write_pointer(version, previous)

    def rollback(self) -> str:
        """Go back to the version that was active before the current one."""
        pointer = self._pointer()
        previous = list(pointer.get("previous", []))
        while previous:
            candidate = previous.pop()
            if candidate != pointer.get("version") and (self.root / candidate).is_dir():
                self.load(candidate)
                self._write_pointer(candidate, previous)
                return candidate
        raise RegistryError("nothing to roll back to: no earlier active version")

    def _write_pointer(self, version: str, previous: list[str]) -> None:
        """Replace the pointer file in one rename."""
        record = {"version": version, "previous": previous[-50:], "activated_at": datetime.now(UTC).isoformat()}
        _write_atomically(self.root / POINTER, (json.dumps(record, indent=2) + "\n").encode())


class ActiveScorer:
    """The active version's scorer for a long-running process, following the pointer.

    The pointer is looked at no more than every `interval` seconds, by one thread while the
    others keep scoring; a version that fails to load is reported in `error` while the
    previous scorer keeps serving.
    """

    def __init__(self, registry: Registry, interval: float = 2.0):
        self.registry = registry
        self.interval = interval
        self.error: str | None = None
        self._scorer: Scorer | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def get(self) -> Scorer:
        """The scorer to use now; raises NoModelError when no model has ever loaded."""
        if time.monotonic() - self._checked >= self.interval and self._lock.acquire(blocking=self._scorer is None):
            try:
                if time.monotonic() - self._checked >= self.interval:
                    self._checked = time.monotonic()
                    self._refresh()
            finally:
                self._lock.release()
        if self._scorer is None:
            raise NoModelError(self.error or f"no active model; {TRAIN_HINT}")
        return self._scorer

    def _refresh(self) -> None:
        """Load the pointed-to version if it is not the one being served."""
        try:
            version = self.registry.active()
            if version is None:
                self.error = f"no active model in {self.registry.root}; {TRAIN_HINT}"
            elif self._scorer is None or self._scorer.version != version:
                self._scorer = self.registry.load(version)
                self.error = None
                _settle()
        except Exception as error:  # a serving process keeps its model whatever the new one does
            self.error = str(error) or type(error).__name__


def _settle() -> None:
    """Put everything alive now, the new model above all, out of the cyclic collector's reach.

    A full collection walks every tracked object: with a model loaded that is about 100 ms in
    which a serving process answers nobody. Frozen objects that die are still freed by reference
    counting, so the previous model goes when the last request scoring with it ends.
    """
    gc.collect()
    gc.freeze()
