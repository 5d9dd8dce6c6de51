"""overspend: alice has 10 TOY and tries to pay bob 15.

The oldest question about digital money: what stops someone from spending
money they do not have? Not the wallet (alice can write any transaction she
likes, byte by byte) but every node: a transaction spends whole coins that
exist in the chain, and ``chain.tx_rules.check_tx_inputs`` refuses it when
its outputs add up to more than the coins it spends (``bad-txns-in-belowout``).
So no balance can go below zero: there is no way to write "minus 5 TOY".
"""

from chain.amounts import COIN

from .narrator import Narrator, toy
from .txs import spend
from .world import Checks, World

NAME = "overspend"
TITLE = "Overspend: paying 15 TOY with 10"
SUMMARY = ("alice has 10 TOY and signs a payment of 15 TOY to bob. Every node checks the "
           "payment against the coins that exist, and refuses it.")
LESSON = ("A payment spends coins that exist, and its outputs can never add up to more than "
          "its inputs: every node checks, so no balance can ever drop below zero.")


def run(world: World, say: Narrator) -> dict:
    cast = world.cast(NAME)
    alice, bob = cast["alice"], cast["bob"]
    check = Checks()
    say.start(NAME, TITLE, SUMMARY, world.describe())
    world.fund(say, [(alice, 10 * COIN)], also_show=[bob])
    coin = world.coin_of(alice)
    before, supply_before = world.balances([alice, bob]), world.supplies()

    tx = spend([coin], alice, [(bob.owner, 15 * COIN)], world.net)
    answers = world.send_everywhere(tx)
    say.step("alice", f"signs a payment of 15 TOY to bob, spending her only coin ({toy(coin.amount)}), "
                      f"and sends it to every node",
             hope="bob gets 15 TOY for a 10 TOY coin: 5 TOY out of nothing, and alice at -5 TOY",
             answers=answers,
             note="Her wallet would have refused to sign this (insufficient funds), so alice "
                  "wrote the transaction by hand. The nodes do not trust wallets: they check.")
    world.explain(say, tx, "alice's payment of 15 TOY with a 10 TOY coin")

    after, supply_after = world.balances([alice, bob]), world.supplies()
    say.step("the network", "shows the balances after the attempt: nothing moved",
             balances=after, seen_at=world.nodes[0].name)

    check("every node refused the payment with bad-txns-in-belowout",
          all(not a.accepted and a.reject_reason == "bad-txns-in-belowout" for a in answers))
    check("the payment exists nowhere", all(world.tx_state(tx.txid.hex(), n) is None for n in world.nodes))
    check("alice still has 10 TOY and bob 0", after == before
          and after[alice.name]["confirmed"] == 10 * COIN and after[bob.name]["confirmed"] == 0)
    check("the money supply is unchanged at every node",
          world.supply_unchanged(supply_before, supply_after))
    outcome = check.outcome(answers=[a.to_json() for a in answers], balances_before=before,
                            balances_after=after, supply_before=supply_before,
                            supply_after=supply_after, txid=tx.txid.hex())
    say.lesson(LESSON, outcome)
    return outcome
