"""duplicate-input: one coin listed twice in one transaction (CVE-2018-17144).

A transaction whose two inputs name the same coin counts that coin twice:
10 TOY in, 20 TOY out, and the overspend check is satisfied. Bitcoin Core
always refused such a transaction in the mempool, but in 2017 an
optimisation skipped the duplicate check for transactions inside blocks
(they were "already checked"). A miner could have put one in a block and
inflated the supply; the bug was found and fixed in September 2018 before
anyone did.

Here ``chain.tx_rules.check_transaction`` refuses it
(``bad-txns-inputs-duplicate``), and ``chain.block_rules.check_block`` runs
that same function on every transaction of every block: the mempool and
the block path share one set of rules, so they cannot drift apart.
"""

from chain.amounts import COIN
from chain.tx import TxOut

from .blocks import forge, submit_everywhere
from .narrator import Narrator, toy
from .txs import fee_for, sign, unsigned
from .world import Checks, World

NAME = "duplicate-input"
TITLE = "Duplicate input: one coin spent twice in one transaction (CVE-2018-17144)"
SUMMARY = ("mallory lists her 10 TOY coin twice in one transaction to pay herself 20 TOY, "
           "first through the mempool, then inside a block she mines herself. Every node "
           "refuses both, and the money supply does not move.")
LESSON = ("Every node checks every transaction with the same rules, in the mempool and inside "
          "blocks: a coin listed twice is refused wherever it appears.")


def run(world: World, say: Narrator) -> dict:
    cast = world.cast(NAME)
    mallory = cast["mallory"]
    check = Checks()
    say.start(NAME, TITLE, SUMMARY, world.describe())
    world.fund(say, [(mallory, 10 * COIN)])
    coin = world.coin_of(mallory)
    before, supply_before = world.balances([mallory]), world.supplies()
    tips_before = {n.name: world.tip(n) for n in world.nodes}

    twice = 2 * coin.amount - fee_for(2, 1)
    tx = sign(unsigned([coin, coin], [mallory.pubkey] * 2, [(mallory.owner, twice)]),
              [mallory, mallory], [coin, coin], world.net)
    answers = world.send_everywhere(tx)
    say.step("mallory", f"signs a transaction whose two inputs are the same {toy(coin.amount)} coin, "
                        f"paying herself {toy(twice)}, and sends it to every node",
             hope=f"the coin counts twice: {toy(2 * coin.amount)} in, so {toy(twice)} out looks "
                  f"covered, and {toy(twice - coin.amount)} appears from nothing",
             answers=answers)

    world.explain(say, tx, "one coin listed as both inputs")

    def build():
        # Refused before its parent even matters (check_block is context-free),
        # so on a busy network the block need not chase the newest tip.
        return forge(world, lambda height: [TxOut(world.net.subsidy(height), mallory.owner)], [tx],
                     follow_tip=False)
    block, block_answers = submit_everywhere(world, build)
    say.step("mallory", "mines a block herself with that transaction inside (valid proof of work, "
                        "an honest reward) and submits it to every node",
             hope="that blocks are trusted to hold checked transactions, as Bitcoin Core 0.14 "
                  "to 0.16 did",
             answers=block_answers,
             note="The block path runs the same check_transaction as the mempool.")

    after, supply_after = world.balances([mallory]), world.supplies()
    tips_after = {n.name: world.tip(n) for n in world.nodes}
    say.step("the network", "shows mallory's balance and the money supply after both attempts",
             balances=after, seen_at=world.nodes[0].name,
             note=f"Money supply at {world.nodes[0].name}: "
                  f"{toy(supply_after[world.nodes[0].name]['total'])}, as before.")
    check("every node refused the transaction with bad-txns-inputs-duplicate",
          all(a.reject_reason == "bad-txns-inputs-duplicate" for a in answers))
    check("every node refused mallory's block with bad-txns-inputs-duplicate",
          all(a.reject_reason == "bad-txns-inputs-duplicate" for a in block_answers))
    check("no node moved to mallory's block",
          all(t != block.hash.hex() for t in tips_after.values()))
    check("mallory still has 10 TOY", after == before and after[mallory.name]["confirmed"] == 10 * COIN)
    check("the money supply is unchanged at every node",
          world.supply_unchanged(supply_before, supply_after))
    outcome = check.outcome(mempool=[a.to_json() for a in answers],
                            block=[a.to_json() for a in block_answers], block_hash=block.hash.hex(),
                            tips_before=tips_before, tips_after=tips_after,
                            balances_before=before, balances_after=after,
                            supply_before=supply_before, supply_after=supply_after)
    say.lesson(LESSON, outcome)
    return outcome
