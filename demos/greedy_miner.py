"""greedy-miner: a miner pays itself more than the rules allow.

A block's first transaction, the coinbase, is how new coins enter the world:
it may claim the block subsidy (50 TOY, halving every 150 blocks) plus the
fees of the block's transactions, and not one unit more. Proof of work says
the miner spent the effort; it says nothing about the amount. Every node
adds up subsidy + fees itself while connecting the block and refuses a
coinbase that claims more (``bad-cb-amount``, the last check of
``chain.block_rules.connect_block``). With ``--explain`` the demo shows the
node's check of the coinbase alone as a transaction: the transaction rules
pass its amount, which only the block rule can judge.
"""

from chain.amounts import COIN
from chain.tx import TxOut

from .blocks import forge, submit_everywhere
from .narrator import Narrator, toy
from .world import Checks, World

NAME = "greedy-miner"
TITLE = "Greedy miner: a block reward with 1,000 TOY extra"
SUMMARY = ("mallory mines a real block (valid proof of work) whose coinbase pays her 1,000 TOY "
           "more than subsidy + fees. Every node refuses the block.")
LESSON = ("Mining earns exactly the subsidy plus the fees, checked by every node: proof of work "
          "buys the right to add a block, not the right to print money.")
EXTRA = 1_000 * COIN


def run(world: World, say: Narrator) -> dict:
    cast = world.cast(NAME)
    mallory = cast["mallory"]
    check = Checks()
    say.start(NAME, TITLE, SUMMARY, world.describe())
    before, supply_before = world.balances([mallory]), world.supplies()
    tips_before = {n.name: world.tip(n) for n in world.nodes}
    say.step("mallory", "runs a miner: she builds the next block herself, on the best block of "
                        "the network", balances=before, seen_at=world.nodes[0].name,
             note=f"mallory: {mallory.about}.")
    claims = {}

    def build():
        def coinbase(height):
            claims.update(height=height, subsidy=world.net.subsidy(height))
            return [TxOut(world.net.subsidy(height) + EXTRA, mallory.owner)]
        return forge(world, coinbase, [])
    block, answers = submit_everywhere(world, build)
    subsidy = claims["subsidy"]
    say.step("mallory", f"mines a block at height {claims['height']} whose coinbase pays her "
                        f"{toy(subsidy + EXTRA)}, and submits it to every node",
             hope=f"{toy(EXTRA)} more than the {toy(subsidy)} subsidy, for the same work",
             answers=answers,
             table={"title": "what the coinbase may claim", "columns": ["", "TOY"],
                    "rows": [["subsidy at this height", toy(subsidy)],
                             ["fees of the block's transactions", toy(0)],
                             ["allowed", toy(subsidy)],
                             ["claimed by mallory", toy(subsidy + EXTRA)]]},
             note="Her proof of work is valid: the nodes refuse the amount, not the work.")
    if say.explain:
        say.step("the class", "asks to see the check: explaintransaction explains transactions, "
                              "and this refusal is of a block",
                 note="So here is mallory's coinbase offered alone, as a transaction: each output "
                      "amount passes the transaction rules (1,050 TOY is a legal amount), and the "
                      "check stops because a coinbase exists only inside a block. What caught "
                      "her is a block rule, which knows the subsidy and the fees: "
                      "chain/block_rules.py, connect_block, its last check (bad-cb-amount).")
        world.explain(say, block.txs[0], "mallory's coinbase, offered alone as a transaction")

    after, supply_after = world.balances([mallory]), world.supplies()
    tips_after = {n.name: world.tip(n) for n in world.nodes}
    say.step("the network", "shows mallory's balance and the best block of each node afterwards",
             balances=after, seen_at=world.nodes[0].name,
             note="No node moved to mallory's block." if block.hash.hex() not in tips_after.values()
             else "A node moved to mallory's block!")
    check("every node refused the block with bad-cb-amount",
          all(a.reject_reason == "bad-cb-amount" for a in answers))
    check("no node moved to mallory's block", block.hash.hex() not in tips_after.values())
    check("mallory has nothing", after[mallory.name] == {"confirmed": 0, "pending": 0})
    check("the money supply is unchanged at every node",
          world.supply_unchanged(supply_before, supply_after))
    outcome = check.outcome(answers=[a.to_json() for a in answers], block_hash=block.hash.hex(),
                            subsidy=subsidy, claimed=subsidy + EXTRA,
                            tips_before=tips_before, tips_after=tips_after,
                            balances_before=before, balances_after=after,
                            supply_before=supply_before, supply_after=supply_after)
    say.lesson(LESSON, outcome)
    return outcome
