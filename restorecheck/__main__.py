"""``python -m restorecheck``."""

from restorecheck.cli import main

main()
