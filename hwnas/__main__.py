"""``python -m hwnas`` runs the command line."""

from hwnas.cli import main

main()
