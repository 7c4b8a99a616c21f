"""Palabre: moderation of reader comments for French-language news sites."""

from .registry import Registry


def load_scorer(models_dir=None, version=None):
    """A scorer for a model version (the active one by default) from a verified registry."""
    return Registry(models_dir).load(version)
