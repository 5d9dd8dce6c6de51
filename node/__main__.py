"""``python -m node ...`` runs a node: the same command as ``toychain node ...``
(devnets use it to start their child nodes)."""

from .cli import node

node()
