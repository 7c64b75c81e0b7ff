"""``python -m stigmer_nb`` runs the CLI."""

from .cli import main

main()
