"""Entry point for `python -m moderation`."""

from .cli import main

main(prog_name="python -m moderation")
