"""tamper: a relay changes the amounts of a signed payment on its way.

Payments travel from node to node, and anyone in between could edit the
bytes. What each input signs (the *sighash*, PROTOCOL.md section 3) is the
whole transaction with signatures blanked: every input and every output,
amounts and recipients included. Change one byte of an output and the
signature no longer verifies (``bad-txns-bad-signature``,
``chain.tx_rules.check_input_authorization``). The relay keeps the sums
balanced on purpose, so that only the signature can catch it.
"""

from chain.amounts import COIN
from chain.tx import Tx, TxOut

from .narrator import Narrator, toy
from .txs import pay
from .world import Checks, World

NAME = "tamper"
TITLE = "Tamper: editing a signed payment in transit"
SUMMARY = ("alice signs a payment of 3 TOY to bob; mallory, a relay working for bob, raises "
           "bob's amount to 9 TOY on the way. Every node refuses the edited payment; alice's "
           "own goes through.")
LESSON = ("A signature covers every input and every output: change one amount and it no "
          "longer verifies, so nobody can alter a payment after it is signed.")


def run(world: World, say: Narrator) -> dict:
    cast = world.cast(NAME)
    alice, bob = cast["alice"], cast["bob"]  # mallory only relays: she holds no coins here
    people = [alice, bob]
    check = Checks()
    say.start(NAME, TITLE, SUMMARY, world.describe())
    world.fund(say, [(alice, 10 * COIN)], also_show=[bob])
    coin = world.coin_of(alice)
    before = world.balances(people)

    genuine = pay(alice, [coin], [(bob.owner, 3 * COIN)], world.net)
    change = genuine.outputs[1].amount
    say.step("alice", f"signs a payment of 3 TOY to bob (and {toy(change)} change back to herself) "
                      f"and hands it to a relay, mallory, to pass on")

    decoded = Tx.decode(bytes.fromhex(genuine.raw.hex()))   # what the relay received
    edited = Tx(decoded.version, decoded.inputs,
                (TxOut(9 * COIN, bob.owner), TxOut(change - 6 * COIN, alice.owner)), decoded.locktime)
    answers = world.send_everywhere(edited.raw.hex())
    say.step("mallory", f"rewrites the amounts in the bytes: bob 9 TOY, alice's change "
                        f"{toy(change - 6 * COIN)}, and passes it on to every node",
             hope="bob gets 6 TOY more from alice; the sums still balance, so only the "
                  "signature could give it away",
             answers=answers,
             table={"title": "the payment's outputs", "columns": ["output", "alice signed", "mallory sent"],
                    "rows": [["to bob", toy(3 * COIN), toy(9 * COIN)],
                             ["change to alice", toy(change), toy(change - 6 * COIN)]]})

    world.explain(say, edited, "the payment as mallory edited it")

    honest = world.send(world.nodes[0], genuine)
    world.confirm([genuine.txid.hex()], say)
    after = world.balances(people)
    say.step("alice", f"sends her own copy of the payment to {world.nodes[0].name}; a block confirms it",
             answers=[honest], balances=after, seen_at=world.nodes[0].name)

    check("every node refused the edited payment with bad-txns-bad-signature",
          all(a.reject_reason == "bad-txns-bad-signature" for a in answers))
    check("the edited payment exists nowhere",
          all(world.tx_state(edited.txid.hex(), n) is None for n in world.nodes))
    check("alice's genuine payment was accepted and confirmed at every node",
          honest.accepted and all((world.tx_state(genuine.txid.hex(), n) or 0) >= 1 for n in world.nodes))
    check("bob got the 3 TOY alice signed for, not 9",
          after[bob.name]["confirmed"] == 3 * COIN and after[alice.name]["confirmed"] == change)
    outcome = check.outcome(tampered=[a.to_json() for a in answers], genuine=honest.to_json(),
                            genuine_txid=genuine.txid.hex(), tampered_txid=edited.txid.hex(),
                            balances_before=before, balances_after=after)
    say.lesson(LESSON, outcome)
    return outcome
