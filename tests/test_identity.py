"""Counterfactual copies: another group is named, everything else is kept."""

import os
import subprocess
import sys

from moderation.identity import swapped

from .conftest import ROOT


def test_group_names_are_replaced_and_the_rest_is_kept():
    copies = swapped("Les Peuls sont des cafards, il faut les chasser.")
    assert len(copies) == 2
    for copy in copies:
        assert "Peuls" not in copy
        assert copy.endswith(" sont des cafards, il faut les chasser.")
        assert copy[4].isupper()


def test_english_and_capitals():
    copies = swapped("MUSLIMS are the first victims of terrorists")
    assert copies and all(c.split()[0].isupper() and c.split()[0] != "MUSLIMS" for c in copies)


def test_comments_naming_no_group_get_no_copy():
    assert swapped("Bravo aux Éléphants, quel match !") == []


def test_copies_are_the_same_on_every_run():
    """Two processes with different string hashing draw the same copies, so training is repeatable."""
    text = "Les musulmans et les chrétiens ont prié ensemble."
    program = f"from moderation.identity import swapped; print(swapped({text!r}))"
    runs = [subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, cwd=ROOT,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert runs[0] == runs[1] == f"{swapped(text)}\n"


def test_words_containing_a_group_name_are_left_alone():
    assert swapped("La francophonie et le russophone") == []
