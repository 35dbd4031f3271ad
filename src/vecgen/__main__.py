"""``python -m vecgen`` runs the CLI."""

from .cli import main

main()
