"""reorg: why merchants wait for confirmations.

Nodes follow the valid chain with the most work. That is how they agree, and
it also means a block can be undone: if another branch with more work shows
up, every node switches to it (``chain/chainstate.py``, ``_activate_best_chain``),
and a payment that was only in the abandoned blocks is gone, as if it had
never been confirmed. If that branch spends the same coin differently, the
payment can never come back (``bad-txns-inputs-missingorspent``,
``chain.tx_rules.find_spent_coins``).

The demo cuts node 3 off from the others (a network split, or an attacker
mining in secret). On the main side alice pays bob, and a block confirms it:
bob ships. On node 3's side alice pays the same coin back to herself and two
blocks are mined. When the sides reconnect, node 3's branch has more work:
every node takes it, and bob's payment disappears.

How many confirmations make a payment safe? An attacker with a share q of
the hash power must catch up from z blocks behind. The Bitcoin whitepaper
(section 11) computes the chance that she ever does; ``attacker_success``
is its formula, and the demo prints its table for q = 0.1.
"""

import math

from chain.amounts import COIN
from client.rpc import RpcClientError

from .narrator import Narrator
from .txs import fee_for, pay, spend
from .world import GOSSIP_SECONDS, Checks, DemoError, World

NAME = "reorg"
TITLE = "Reorg: a confirmed payment undone by a longer chain"
SUMMARY = ("Node 3 is cut off. alice pays bob on the main side (1 confirmation) and pays the "
           "same coin to herself on node 3's side, which mines a longer chain. When the sides "
           "reconnect, the longer chain wins and bob's payment disappears.")
LESSON = ("A confirmation is not final: the chain with the most work wins, so a merchant waits "
          "for enough blocks that out-mining them becomes hopeless (6 is the custom).")
MIN_NODES = 3
OWN_DEVNET_ONLY = True  # it partitions the network: see docs/teaching.md
Q = 0.1


def attacker_success(q: float, z: int) -> float:
    """Probability that an attacker with hash share ``q`` ever catches up from
    ``z`` blocks behind (Nakamoto 2008, section 11)."""
    p = 1.0 - q
    lam = z * (q / p)
    total = 1.0
    for k in range(z + 1):
        poisson = math.exp(-lam) * lam ** k / math.factorial(k)
        total -= poisson * (1 - (q / p) ** (z - k))
    return total


def confirmations_needed(q: float, risk: float) -> int:
    """The fewest confirmations z with attacker_success(q, z) < risk."""
    z = 0
    while attacker_success(q, z) >= risk:
        z += 1
    return z


def run(world: World, say: Narrator) -> dict:
    if not world.own or len(world.nodes) < MIN_NODES:
        raise DemoError("the reorg demo splits the network and mines on both sides, so it needs "
                        "the devnet it starts itself: run it without --node")
    cast = world.cast(NAME)
    alice, bob = cast["alice"], cast["bob"]
    people = [alice, bob]
    main, cut = world.nodes[:-1], world.nodes[-1]
    main_names = " and ".join(n.name for n in main)
    check = Checks()
    say.start(NAME, TITLE, SUMMARY, world.describe())
    world.fund(say, [(alice, 10 * COIN)], also_show=[bob])
    coin = world.coin_of(alice)
    before = world.balances(people)

    for node in main:
        for a, b in ((node, cut), (cut, node)):
            try:
                world.call(a, "disconnectnode", b.addr)
            except RpcClientError as error:
                if error.code != -29:  # -29: not connected, already apart
                    raise
    world.wait(lambda: not any(n.addr in world.peers(cut) or cut.addr in world.peers(n) for n in main),
               GOSSIP_SECONDS, f"{cut.name} to be cut off")
    say.step("the network", f"splits: {cut.name} is cut off from {main_names}",
             note="Think of an attacker who mines in secret, or a country whose links go down.")

    to_bob = pay(alice, [coin], [(bob.owner, 9 * COIN)], world.net)
    paid = world.send(main[0], to_bob)
    world.wait_everywhere(to_bob.txid.hex(), 0, main)
    (merchant_block,) = world.mine(1, main[0], reach=main)
    seen_by_bob = world.tx_state(to_bob.txid.hex(), main[0])
    say.step("alice", f"pays bob 9 TOY for goods at {main[0].name}; a block confirms it",
             hope="bob ships the goods after one confirmation", answers=[paid],
             balances=world.balances(people, main[0]), seen_at=main[0].name,
             note=f"bob sees his payment with {seen_by_bob} confirmation and ships.")

    to_self = spend([coin], alice, [(alice.owner, coin.amount - fee_for(1, 1))], world.net)
    kept = world.send(cut, to_self)
    attack_blocks = world.mine(2, cut, reach=[cut])
    say.step("alice", f"pays the same coin to herself at {cut.name}, which never heard of bob's "
                      f"payment, and {cut.name}'s side mines 2 blocks",
             hope="a longer chain in which bob was never paid", answers=[kept],
             balances=world.balances(people, cut), seen_at=cut.name)

    heights = {n.name: world.height(n) for n in world.nodes}
    for node in main:
        world.call(cut, "addnode", node.addr, "onetry")
    final_tip = world.wait_synced(timeout=GOSSIP_SECONDS)
    after = world.balances(people)
    states = {n.name: world.tx_state(to_bob.txid.hex(), n) for n in world.nodes}
    merchant_conf = {n.name: world.call(n, "getblockheader", merchant_block)["confirmations"]
                     for n in world.nodes}
    say.step("the network", f"reconnects; {cut.name}'s branch has more work (2 blocks against 1), "
                            f"so every node switches to it and undoes the block with bob's payment",
             balances=after, seen_at=main[0].name,
             table={"title": "each node's chain", "columns": ["node", "height before reconnecting", "height after",
                                                            "block with bob's payment", "bob's payment"],
                    "rows": [[n.name, heights[n.name], world.height(n),
                              "on its best chain" if merchant_conf[n.name] >= 1 else "not on its chain",
                              "gone" if states[n.name] is None else f"{states[n.name]} confirmations"]
                             for n in world.nodes]},
             note="The coin is spent by alice's payment to herself, so bob's payment cannot come "
                  "back: alice has the coin, bob has nothing, and the goods are gone.")

    z_max = 6
    table = [[z, f"{attacker_success(Q, z):.7f}"] for z in range(z_max + 1)]
    safe = confirmations_needed(Q, 0.001)
    say.step("the class", "asks: how many confirmations would have made bob safe?",
             table={"title": f"chance an attacker with {Q:.0%} of the hash power ever catches up "
                             f"from z blocks behind (Bitcoin whitepaper, section 11)",
                    "columns": ["z (confirmations)", "probability"], "rows": table},
             note=f"bob waited for 1 confirmation, so alice's side needed 2 blocks before the honest "
                  f"side mined another. Had bob waited for z confirmations, she would have needed "
                  f"z + 1 blocks: to out-mine the whole honest network from z blocks behind. In "
                  f"the demo her blocks came at once because the demo mined them; a real attacker "
                  f"races the honest hash power, and with {Q:.0%} of it, {safe} confirmations bring "
                  f"her chance below 0.1%.")

    check("node 3's side accepted alice's second payment while cut off", kept.accepted)
    check("bob's payment had 1 confirmation before the sides reconnected", seen_by_bob == 1)
    check("every node ended on node 3's branch", final_tip == attack_blocks[-1])
    check("the block with bob's payment is abandoned at every node",
          all(c == -1 for c in merchant_conf.values()))
    check("bob's payment exists at no node", all(s is None for s in states.values()))
    check("alice's payment to herself is confirmed at every node",
          all((world.tx_state(to_self.txid.hex(), n) or 0) >= 2 for n in world.nodes))
    check("bob has nothing, alice has her coin back minus a fee",
          after[bob.name]["confirmed"] == 0
          and after[alice.name]["confirmed"] == coin.amount - fee_for(1, 1))
    outcome = check.outcome(reorg=final_tip == attack_blocks[-1] and merchant_conf[main[0].name] == -1,
                            merchant_block=merchant_block, attack_blocks=attack_blocks,
                            to_bob=to_bob.txid.hex(), to_self=to_self.txid.hex(),
                            confirmations_bob_saw=seen_by_bob, heights_before=heights,
                            balances_before=before, balances_after=after,
                            attacker_success={str(z): attacker_success(Q, z) for z in range(z_max + 1)},
                            safe_confirmations=safe)
    say.lesson(LESSON, outcome)
    return outcome
