"""steal: mallory tries to spend alice's coin.

A coin is locked to an *owner*: the hash of a public key. To spend it, an
input must show a public key whose hash is that owner, and a signature by
that key over the transaction (PROTOCOL.md sections 2 and 3).
``chain.tx_rules.check_input_authorization`` checks both, in that order:

1. mallory signs with her own key and shows her own public key: its hash is
   not the coin's owner (``bad-txns-wrong-owner``);
2. mallory shows alice's public key (it is public: it is in every payment
   alice ever made) but can only sign with her own key: the signature does
   not verify for alice's key (``bad-txns-bad-signature``).

Without alice's private key there is no third way.
"""

from chain.amounts import COIN

from .narrator import Narrator, toy
from .txs import fee_for, sign, spend, unsigned
from .world import Checks, World

NAME = "steal"
TITLE = "Steal: spending someone else's coin"
SUMMARY = ("mallory tries to spend alice's 10 TOY coin: first with her own key, then with "
           "alice's public key and her own signature. Every node refuses both.")
LESSON = ("Only the holder of the private key can spend a coin: nodes check that the key "
          "matches the coin's owner and that the signature verifies for it.")


def run(world: World, say: Narrator) -> dict:
    cast = world.cast(NAME)
    alice, mallory = cast["alice"], cast["mallory"]
    people = [alice, mallory]
    check = Checks()
    say.start(NAME, TITLE, SUMMARY, world.describe())
    world.fund(say, [(alice, 10 * COIN)], also_show=[mallory])
    coin = world.coin_of(alice)
    before, supply_before = world.balances(people), world.supplies()
    loot = [(mallory.owner, coin.amount - fee_for(1, 1))]

    own_key = spend([coin], mallory, loot, world.net)
    wrong_owner = world.send_everywhere(own_key)
    say.step("mallory", f"signs a payment of alice's {toy(coin.amount)} coin to herself, "
                        f"with her own key",
             hope=f"to take alice's {toy(coin.amount)}", answers=wrong_owner,
             note="The coin is locked to the hash of alice's public key; mallory's key hashes "
                  "to something else.")

    world.explain(say, own_key, "mallory's payment of alice's coin, signed with her own key")

    forged = sign(unsigned([coin], [alice.pubkey], loot), [mallory], [coin], world.net)
    bad_signature = world.send_everywhere(forged)
    say.step("mallory", "tries again: she puts alice's public key in the input (anyone can copy "
                        "it from the chain) and signs with her own key",
             hope="that the nodes only compare the key with the coin's owner", answers=bad_signature,
             note="The key now matches, but the signature was made with mallory's key: it does "
                  "not verify for alice's.")
    world.explain(say, forged, "alice's public key with mallory's signature")

    after, supply_after = world.balances(people), world.supplies()
    say.step("the network", "shows the balances after both attempts", balances=after,
             seen_at=world.nodes[0].name)
    check("every node refused mallory's own key with bad-txns-wrong-owner",
          all(a.reject_reason == "bad-txns-wrong-owner" for a in wrong_owner))
    check("every node refused alice's key with mallory's signature with bad-txns-bad-signature",
          all(a.reject_reason == "bad-txns-bad-signature" for a in bad_signature))
    check("alice still has 10 TOY, mallory 0", after == before
          and after[alice.name]["confirmed"] == 10 * COIN and after[mallory.name]["confirmed"] == 0)
    check("the money supply is unchanged at every node",
          world.supply_unchanged(supply_before, supply_after))
    outcome = check.outcome(wrong_owner=[a.to_json() for a in wrong_owner],
                            bad_signature=[a.to_json() for a in bad_signature],
                            balances_before=before, balances_after=after,
                            supply_before=supply_before, supply_after=supply_after)
    say.lesson(LESSON, outcome)
    return outcome
