"""The demos, in the order ``toychain demo all`` runs them, and what each needs.

Each demo module has ``NAME``, ``TITLE``, ``SUMMARY``, ``LESSON`` and
``run(world, say) -> outcome``; optionally ``MIN_NODES`` (default 1) and
``OWN_DEVNET_ONLY`` (default False: it may run against ``--node`` URLs).
"""

from . import (double_spend, duplicate_input, greedy_miner, leverage, overflow, overspend, reorg,
               steal, tamper)

ORDER = (overspend, double_spend, steal, tamper, overflow, duplicate_input, greedy_miner, reorg,
         leverage)
DEMOS = {module.NAME: module for module in ORDER}


def min_nodes(module) -> int:
    return getattr(module, "MIN_NODES", 1)


def own_devnet_only(module) -> bool:
    return getattr(module, "OWN_DEVNET_ONLY", False)


def unavailable(module, node_count: int, own: bool) -> str | None:
    """Why ``module`` cannot run on this network, or None."""
    if own_devnet_only(module) and not own:
        return (f"the {module.NAME} demo splits the network and mines on both sides, so it needs "
                f"the devnet it starts itself: run it without --node/--devnet")
    if node_count < min_nodes(module):
        return (f"the {module.NAME} demo needs at least {min_nodes(module)} nodes; "
                f"{node_count} given (repeat --node URL)")
    return None
