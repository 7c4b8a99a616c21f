"""Quality on real text: off_topic follows the article, and the quality benchmark measures every set."""

import json
import os
import subprocess
import sys

import pytest

from moderation import corpora
from moderation.evaluation import swap_test

from .conftest import ROOT, SEED, TEST_KEY

SECTIONS = {"model", "holdout_by_article", "holdout_by_batch", "dev_set", "public", "swap_test", "checks", "seed", "peers"}
# About 0.05 below the swap-test ROC-AUC of the default model trained from data/ at commit 6824f18
# (2026-12-02): fr 0.749 (711 pairs), en 0.789 (139 pairs); seeds 1 and 2 gave 0.747/0.751 and 0.795/0.792.
SWAP_AUC_BOUNDS = {"fr": 0.70, "en": 0.74}


@pytest.fixture(scope="module")
def swap(scorer):
    """The swap test of the session model on the held-out articles of data/."""
    return swap_test(scorer, corpora.load([ROOT / "data"]).frame)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_comment_under_another_article_ranks_as_more_off_topic(swap, language):
    """The same comment ranks higher under another article; each bound is about 0.05 under the measured AUC."""
    assert swap[language]["pairs"] >= 50
    assert swap[language]["roc_auc"] > SWAP_AUC_BOUNDS[language], swap[language]


@pytest.mark.parametrize("language", ["fr", "en", "all"])
def test_moving_a_comment_raises_its_off_topic_score_on_average(swap, language):
    assert swap[language]["mean_difference"] > 0, swap[language]
    assert swap[language]["raised"] > 0.5, swap[language]


def test_the_swap_test_moves_each_comment_to_the_same_article_on_every_run(scorer, swap):
    assert swap_test(scorer.pipelines, corpora.load([ROOT / "data"]).frame) == swap


def test_quality_benchmark_writes_every_section(models_dir, tmp_path):
    out = tmp_path / "out.json"
    env = dict(os.environ, MODERATION_MODELS_DIR=str(models_dir), MODERATION_SECRET_KEY=TEST_KEY)
    result = subprocess.run([sys.executable, "benchmarks/bench_quality.py", "--json", str(out)],
                            cwd=ROOT, env=env, capture_output=True, timeout=900)
    assert result.returncode == 0, result.stderr.decode()
    printed, written = result.stdout.decode(), out.read_text(encoding="utf-8")
    figures = json.loads(written)
    assert set(figures) == SECTIONS
    assert figures["holdout_by_article"]["toxic"]["rows"] > 1000
    assert figures["holdout_by_batch"]["files"]
    assert all(figures["swap_test"][language]["pairs"] for language in ("fr", "en", "all"))
    assert figures["checks"]["total"] == figures["checks"]["passed"] + len(figures["checks"]["failures"])
    for row in ("data/ holdout by article", "data/ holdout by batch", "public corpora", "swap test (en)", "data/checks.csv"):
        assert row in printed
    if SEED.exists():
        assert len(figures["seed"]["comments"]) == 3
        assert figures["dev_set"]["toxic"]["rows"] == 1000
        assert figures["peers"]["systems"]
        assert not any(line in written for line in SEED.read_text(encoding="utf-8").splitlines() if len(line) > 20)
