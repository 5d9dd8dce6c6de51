"""``python -m toychain ...`` is the ``toychain`` command (the devnet's
dashboard runs demos with it)."""

from .cli import main

main()
