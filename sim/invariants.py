"""What must hold on every run, whatever the adversaries do.

Checked after every batch of actions of an honest node, or once a simulated
second in long runs (``check_node``):

* **budgets**: every container an honest node keeps is within its named
  bound (``Node.limits``: per-peer queues, tracked announcements, requests
  in flight, the orphan pool, the address book, bans ...);
* **no honest ban**: no honest node has banned an honest peer, or holds a
  ban on an honest node's address.

Checked at the end of a run (``check_end``), once the network has healed
and settled:

* **convergence**: every honest node is on the same tip, and it is the tip
  with the most work any honest node knows;
* **no tx lost**: every tx an honest node accepted is, at every honest node,
  in the mempool, in the active chain, or shut out by a conflicting tx that
  node holds or confirmed (first seen wins);
* **no coin spent twice**: no two mempool txs spend one coin, every mempool
  input exists, and the coins in existence add up to exactly what the
  blocks created.
"""

from chain.params import GENESIS_REWARD

from .honest import HonestNode


class InvariantBroken(AssertionError):
    pass


def check_budgets(node: HonestNode) -> None:
    for name, size, bound in node.node.limits():
        if size > bound:
            raise InvariantBroken(f"{node.name}: {name} holds {size} > bound {bound}")


def check_no_honest_ban(node: HonestNode, honest: set[str]) -> None:
    if node.banned_honest:
        raise InvariantBroken(f"{node.name} banned honest peers: {node.banned_honest}")
    framed = honest & set(node.node.banlist.bans)
    if framed:
        raise InvariantBroken(f"{node.name} holds bans on honest nodes {sorted(framed)}")


def check_node(node: HonestNode, honest: set[str]) -> None:
    """The per-event checks for one node (``honest``: every honest listen address)."""
    check_budgets(node)
    check_no_honest_ban(node, honest)


def watch(nodes: list[HonestNode], every_action: bool = True) -> None:
    """Check ``check_node`` on each of ``nodes`` after each of its batches of actions,
    or (cheaper, for long runs) after each of its timer ticks, once a simulated second."""
    honest = {n.listen for n in nodes}
    for node in nodes:
        check = lambda n: check_node(n, honest)  # noqa: E731
        node.after_apply, node.after_timer = (check, None) if every_action else (None, check)


def converged(nodes: list[HonestNode]) -> bool:
    return len({n.chain.tip.hash for n in nodes}) == 1


def check_converged(nodes: list[HonestNode]) -> None:
    best = max(n.chain.tip.chainwork for n in nodes)
    tips = {n.name: (n.chain.height, n.chain.tip.hash.hex()[:12]) for n in nodes}
    if not converged(nodes) or nodes[0].chain.tip.chainwork != best:
        raise InvariantBroken(f"honest nodes did not converge on the most-work tip: {tips}")


def settled(node: HonestNode, tx) -> bool:
    """Is ``tx`` in ``node``'s mempool or chain, or shut out by a conflict there?"""
    pool = node.mempool
    if tx.txid in pool or node.chain.store.tx_location(tx.txid) is not None:
        return True
    for txin in tx.inputs:
        rival = pool.spends.get(txin.outpoint)
        if rival is not None and rival != tx.txid:
            return True  # the node saw a conflicting tx first
        if pool.get_coin(txin.outpoint) is None and txin.prev_txid not in pool:
            return True  # the coin is spent (or never existed) on this node's chain
    return False


def check_txs(nodes: list[HonestNode], txs: dict) -> None:
    accepted = {txid for n in nodes for txid in n.accepted}
    for txid in sorted(accepted):
        tx = txs.get(txid)
        if tx is None:
            raise InvariantBroken(f"an honest node accepted tx {txid.hex()} nobody made")
        missing = [n.name for n in nodes if not settled(n, tx)]
        if missing:
            raise InvariantBroken(f"tx {txid.hex()} accepted by an honest node never reached "
                                  f"the mempool or chain of {missing}")


def check_no_double_spend(nodes: list[HonestNode]) -> None:
    for node in nodes:
        pool, chain = node.mempool, node.chain
        spent = {}
        for txid, entry in pool.entries.items():
            for txin in entry.tx.inputs:
                if txin.outpoint in spent:
                    raise InvariantBroken(f"{node.name}: {txin.outpoint} spent by mempool txs "
                                          f"{spent[txin.outpoint].hex()} and {txid.hex()}")
                spent[txin.outpoint] = txid
                parent = pool.entries.get(txin.prev_txid)
                exists = (txin.prev_index < len(parent.tx.outputs) if parent is not None
                          else chain.get_coin(txin.outpoint) is not None)
                if not exists:
                    raise InvariantBroken(f"{node.name}: mempool tx {txid.hex()} spends "
                                          f"{txin.outpoint}, which does not exist")
        supply = chain.store.utxo_stats()[1]
        created = GENESIS_REWARD + sum(chain.net.subsidy(h) for h in range(1, chain.height + 1))
        if supply != created:
            raise InvariantBroken(f"{node.name}: coins add up to {supply} units, "
                                  f"the blocks created {created}")


def check_end(nodes: list[HonestNode], txs: dict) -> None:
    honest = {n.listen for n in nodes}
    for node in nodes:
        check_node(node, honest)
    check_converged(nodes)
    check_txs(nodes, txs)
    check_no_double_spend(nodes)
