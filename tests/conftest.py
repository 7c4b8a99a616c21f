"""Shared fixtures: one real model trained from data/ per session, and a CLI runner."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEED = SHARED / "seed" / "000_63fa037eb8ff925a.txt"
DATASETS = SHARED / "datasets"
TEST_KEY = "test-signing-key"


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """Never touch the project's models/ or instance/ key: every test works in temporary folders."""
    saved = {name: os.environ.get(name) for name in ("MODERATION_MODELS_DIR", "MODERATION_SECRET_KEY")}
    os.environ["MODERATION_MODELS_DIR"] = str(tmp_path_factory.mktemp("unused-models"))
    os.environ["MODERATION_SECRET_KEY"] = TEST_KEY
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def run_cli(*args, models_dir, stdin: bytes | None = None, check=False, timeout=600):
    """Run `python -m moderation ...` in a real subprocess, as a user would."""
    env = dict(os.environ, MODERATION_MODELS_DIR=str(models_dir), MODERATION_SECRET_KEY=TEST_KEY)
    result = subprocess.run(
        [sys.executable, "-m", "moderation", *args], cwd=ROOT, env=env, input=stdin,
        capture_output=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"moderation {' '.join(args)} failed:\n{result.stderr.decode()}")
    return result


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The default model, trained from data/ by the CLI exactly as the README says (once per session)."""
    models_dir = tmp_path_factory.mktemp("models")
    result = run_cli("train", "--data", "data", models_dir=models_dir, check=True)
    version = result.stdout.decode().split("\n")[0].removeprefix("version ").strip()
    run_cli("models", "activate", version, models_dir=models_dir, check=True)
    return models_dir, version, result


@pytest.fixture(scope="session")
def models_dir(trained):
    """Folder holding the session's trained and activated model."""
    return trained[0]


@pytest.fixture(scope="session")
def scorer(models_dir):
    """The session model's scorer, loaded through the public library entry point."""
    import moderation

    return moderation.load_scorer(models_dir)


@pytest.fixture
def seed_page():
    """The real sample page, read in place; skipped with a reason where shared/ is absent."""
    if not SEED.exists():
        pytest.skip(f"the seed page {SEED} is missing (it lives in ../shared/seed beside the checkout)")
    return SEED.read_text(encoding="utf-8").splitlines()


def resign(folder, **changes):
    """Rewrite a version's metadata.json with changes, signed with the test key as the registry would."""
    from moderation.registry import _signature

    path = folder / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    metadata["signature"] = _signature(metadata, TEST_KEY.encode())
    path.write_text(json.dumps(metadata))


def json_lines(output: bytes) -> list[dict]:
    """Parse the CLI's JSON-lines output."""
    return [json.loads(line) for line in output.decode("utf-8").splitlines()]
