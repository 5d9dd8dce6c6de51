"""overflow: the value-overflow incident of August 2010 (CVE-2010-5139).

Bitcoin block 74638 held a transaction with two outputs of about 92 billion
BTC each. Bitcoin adds amounts in signed 64-bit integers; the sum of the two
did not fit, wrapped around to a negative number, and so passed the check
"inputs >= outputs". 184 billion BTC existed for a few hours, until a fixed
release and a new chain without that block.

The fix, here in ``chain.tx_rules.check_transaction``: every output must lie
in [0, MAX_MONEY] (``bad-txns-vout-toolarge``), and so must the running sum
of outputs (``bad-txns-txouttotal-toolarge``), checked one output at a time,
before any sum could overflow. Python's integers never overflow, so the demo
computes what a C program would have: ``(a + b + 2**63) % 2**64 - 2**63``.
"""

from chain.amounts import COIN, MAX_MONEY

from .narrator import Narrator, toy
from .txs import spend
from .world import Checks, World

NAME = "overflow"
TITLE = "Overflow: 184 billion coins from 1 (CVE-2010-5139)"
SUMMARY = ("mallory replays the 2010 value-overflow incident: two outputs of 92 billion TOY "
           "each, whose sum wraps around in 64-bit arithmetic. Every node refuses it.")
LESSON = ("Amounts are checked one by one against the most money that can exist "
          "(21 million TOY), so no sum can ever overflow and create coins from nothing.")
BIG = 92_000_000_000 * COIN  # fits in a signed 64-bit integer: 9.2e18 < 9.22e18


def wrap_int64(value: int) -> int:
    """``value`` as a C ``int64_t`` would hold it after overflowing (two's complement)."""
    return (value + 2 ** 63) % 2 ** 64 - 2 ** 63


def run(world: World, say: Narrator) -> dict:
    cast = world.cast(NAME)
    mallory = cast["mallory"]
    check = Checks()
    say.start(NAME, TITLE, SUMMARY, world.describe())
    world.fund(say, [(mallory, 1 * COIN)])
    coin = world.coin_of(mallory)
    before, supply_before = world.balances([mallory]), world.supplies()

    true_sum, wrapped = BIG + BIG, wrap_int64(BIG + BIG)
    huge = spend([coin], mallory, [(mallory.owner, BIG), (mallory.owner, BIG)], world.net)
    answers = world.send_everywhere(huge)
    say.step("mallory", f"signs a payment of her {toy(coin.amount)} coin with two outputs of "
                        f"92,000,000,000 TOY each, to herself",
             hope=f"a node that adds amounts in 64-bit integers gets {toy(wrapped)}, less than "
                  f"her {toy(coin.amount)} input, and lets her create {toy(true_sum)}",
             answers=answers,
             table={"title": "adding the two outputs", "columns": ["", "units", "TOY"],
                    "rows": [["each output", f"{BIG:,}", toy(BIG)],
                             ["true sum", f"{true_sum:,}", toy(true_sum)],
                             ["largest int64", f"{2 ** 63 - 1:,}", toy(2 ** 63 - 1)],
                             ["int64 sum (C, wrapped)", f"{wrapped:,}", toy(wrapped)],
                             ["MAX_MONEY", f"{MAX_MONEY:,}", toy(MAX_MONEY)]]},
             note="In 2010 Bitcoin checked inputs >= outputs on the wrapped sum, and the "
                  "transaction passed.")

    world.explain(say, huge, "two outputs of 92 billion TOY")

    part = 20_000_000 * COIN
    sneaky = spend([coin], mallory, [(mallory.owner, part), (mallory.owner, part)], world.net)
    running = world.send_everywhere(sneaky)
    say.step("mallory", "tries outputs that are each below the 21 million TOY limit: two of "
                        "20,000,000 TOY",
             hope="that only single outputs are checked, not their sum", answers=running,
             note="The running sum of the outputs is checked too, one output at a time.")
    world.explain(say, sneaky, "two outputs of 20 million TOY")

    after, supply_after = world.balances([mallory]), world.supplies()
    say.step("the network", "shows mallory's balance and the money supply after both attempts",
             balances=after, seen_at=world.nodes[0].name)
    check("the int64 sum of the two outputs wraps to a negative number",
          wrapped < 0 and true_sum > 2 ** 63 - 1)
    check("every node refused the 92-billion outputs with bad-txns-vout-toolarge",
          all(a.reject_reason == "bad-txns-vout-toolarge" for a in answers))
    check("every node refused the 2 x 20-million outputs with bad-txns-txouttotal-toolarge",
          all(a.reject_reason == "bad-txns-txouttotal-toolarge" for a in running))
    check("mallory still has 1 TOY", after == before and after[mallory.name]["confirmed"] == COIN)
    check("the money supply is unchanged at every node",
          world.supply_unchanged(supply_before, supply_after))
    outcome = check.outcome(output=BIG, true_sum=true_sum, wrapped_sum=wrapped,
                            vout_toolarge=[a.to_json() for a in answers],
                            txouttotal_toolarge=[a.to_json() for a in running],
                            balances_before=before, balances_after=after,
                            supply_before=supply_before, supply_after=supply_after)
    say.lesson(LESSON, outcome)
    return outcome
