"""``python -m node`` is the ``toychain`` command (used to start child nodes)."""

from .cli import main

main()
