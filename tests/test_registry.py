"""The registry loads only what it wrote and verified; switching and rolling back are atomic."""

import json
import shutil

import pytest

from moderation import registry as registry_module
from moderation.registry import ActiveScorer, NoModelError, Registry, RegistryError

from .conftest import resign


@pytest.fixture
def two_versions(tmp_path, trained):
    """A fresh registry holding two copies (v1, v2) of the session's model."""
    source_dir, version, _ = trained
    for name in ("20260101-000000", "20260102-000000"):
        shutil.copytree(source_dir / version, tmp_path / name)
        resign(tmp_path / name, version=name)
    return Registry(tmp_path)


def test_activate_then_load_gives_that_version(two_versions):
    two_versions.activate("20260101-000000")
    assert two_versions.active() == "20260101-000000"
    assert two_versions.load().version == "20260101-000000"
    assert [v["active"] for v in two_versions.versions()] == [True, False]


def test_tampered_model_file_is_refused_and_the_active_one_stays(two_versions):
    two_versions.activate("20260101-000000")
    with open(two_versions.root / "20260102-000000" / "model.joblib", "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(RegistryError, match="sha256.*refusing to load"):
        two_versions.activate("20260102-000000")
    assert two_versions.active() == "20260101-000000"


def test_edited_metadata_is_refused(two_versions):
    path = two_versions.root / "20260102-000000" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["thresholds"]["toxic"]["review"] = 0.99
    path.write_text(json.dumps(metadata))
    with pytest.raises(RegistryError, match="not signed by this installation's key"):
        two_versions.load("20260102-000000")


def test_files_signed_with_another_key_are_refused(two_versions, monkeypatch):
    monkeypatch.setenv("MODERATION_SECRET_KEY", "someone-else")
    with pytest.raises(RegistryError, match="not signed"):
        two_versions.load("20260101-000000")


def test_model_built_with_other_library_versions_is_refused(two_versions):
    libraries = dict(registry_module.library_versions(), **{"scikit-learn": "1.0.2"})
    resign(two_versions.root / "20260102-000000", libraries=libraries)
    with pytest.raises(RegistryError, match=r"built with scikit-learn 1\.0\.2 \(installed"):
        two_versions.load("20260102-000000")


def test_unknown_or_unsafe_version_names_are_refused(two_versions):
    for name in ("nope", "../models", ".incomplete-x", ""):
        with pytest.raises(RegistryError):
            two_versions.verify(name)


def test_rollback_returns_to_the_previous_version(two_versions):
    two_versions.activate("20260101-000000")
    two_versions.activate("20260102-000000")
    assert two_versions.rollback() == "20260101-000000"
    assert two_versions.active() == "20260101-000000"
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        two_versions.rollback()


def test_no_active_model_says_how_to_train(tmp_path):
    with pytest.raises(NoModelError, match="python -m moderation train --data data --activate"):
        Registry(tmp_path).load()


def test_pointer_switch_leaves_no_temporary_files(two_versions):
    two_versions.activate("20260101-000000")
    two_versions.activate("20260102-000000")
    names = sorted(p.name for p in two_versions.root.iterdir() if p.is_file())
    assert names == ["active.json"]
    assert json.loads((two_versions.root / "active.json").read_text())["previous"] == ["20260101-000000"]


def test_running_process_follows_the_pointer_but_keeps_serving_on_a_bad_version(two_versions):
    two_versions.activate("20260101-000000")
    live = ActiveScorer(two_versions, interval=0)
    assert live.get().version == "20260101-000000"
    with open(two_versions.root / "20260102-000000" / "model.joblib", "ab") as handle:
        handle.write(b"junk")
    two_versions._write_pointer("20260102-000000", ["20260101-000000"])
    assert live.get().version == "20260101-000000"
    assert "sha256" in live.error
    shutil.rmtree(two_versions.root / "20260102-000000")
    shutil.copytree(two_versions.root / "20260101-000000", two_versions.root / "20260102-000000")
    resign(two_versions.root / "20260102-000000", version="20260102-000000")
    scorer = live.get()
    assert scorer.version == "20260102-000000" and live.error is None
    assert scorer.score("bonjour")["model_version"] == "20260102-000000"


def test_interrupted_save_leaves_nothing_half_written(tmp_path, trained):
    registry = Registry(tmp_path)

    def crash(folder, metadata):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        registry.save("20260103-000000", {"pipelines": {}}, {"thresholds": {}}, crash)
    assert list(tmp_path.iterdir()) == []
    assert registry.versions() == []


def test_a_malformed_signature_is_refused_and_serving_goes_on(two_versions):
    two_versions.activate("20260101-000000")
    live = ActiveScorer(two_versions, interval=0)
    assert live.get().version == "20260101-000000"
    path = two_versions.root / "20260102-000000" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["signature"] = "é"
    path.write_text(json.dumps(metadata))
    with pytest.raises(RegistryError, match="not signed"):
        two_versions.activate("20260102-000000")
    two_versions._write_pointer("20260102-000000", ["20260101-000000"])
    assert live.get().version == "20260101-000000" and "not signed" in live.error
