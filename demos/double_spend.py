"""double-spend: alice signs the same coin to bob and to carol, at two nodes
at the same moment.

Each payment is valid on its own: right owner, right signature, inputs cover
the outputs. Only together are they a fraud, and no node sees both at first.
Node 1 accepts the payment to bob, node 3 the payment to carol; then each
relays what it accepted to its peers, and where the two meet the second one
is refused: its coin is already spent by a payment in the mempool
(``txn-mempool-conflict``, first seen wins, ``node/mempool.py``). The next
block holds exactly one of the two, and then every node agrees: the coin is
spent, and a second spend names a coin that no longer exists
(``bad-txns-inputs-missingorspent``, ``chain.tx_rules.find_spent_coins``).
"""

import http.client
import json
import threading
from urllib.parse import urlparse

from chain.amounts import COIN

from .narrator import Narrator
from .txs import pay
from .world import GOSSIP_SECONDS, Answer, Checks, DemoError, World

NAME = "double-spend"
TITLE = "Double spend: one coin, two payments, two nodes"
SUMMARY = ("alice signs her 10 TOY coin to bob at node 1 and to carol at node 3 at the same "
           "moment. Each node accepts one; when gossip meets, the other is refused; the next "
           "block holds exactly one payment, and every node agrees which.")
LESSON = ("A coin can be spent once: nodes refuse a second spend of a coin as soon as they know "
          "the first, and a block settles which spend came first for everyone.")
MIN_NODES = 2
CONFLICT = "txn-mempool-conflict"


def send_together(world: World, jobs: list) -> list[Answer]:
    """Send each (node, tx) of ``jobs`` with ``sendrawtransaction``, all at the
    same instant. Each thread opens its connection and prepares its request
    first and only sends it when all are ready: threads of one process take
    turns (Python's global lock), and a head start of a few milliseconds is
    enough for the first node's gossip to reach the other node first."""
    barrier = threading.Barrier(len(jobs))
    replies: list[dict | None] = [None] * len(jobs)

    def worker(index: int, node, tx) -> None:
        address = urlparse(world.node(node).url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=GOSSIP_SECONDS)
        body = json.dumps({"jsonrpc": "2.0", "id": index, "method": "sendrawtransaction",
                           "params": [tx.raw.hex()]})
        try:
            connection.connect()
            barrier.wait(GOSSIP_SECONDS)
            connection.request("POST", "/rpc", body, {"Content-Type": "application/json"})
            replies[index] = json.loads(connection.getresponse().read())
        except (OSError, ValueError, threading.BrokenBarrierError) as error:
            replies[index] = {"error": {"message": f"cannot reach {world.node(node).name}: {error}"}}
            barrier.abort()
        finally:
            connection.close()
    threads = [threading.Thread(target=worker, args=(i, n, t)) for i, (n, t) in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = []
    for (node, _), reply in zip(jobs, replies):
        name, error = world.node(node).name, reply.get("error")
        if not error:
            answers.append(Answer(name, True, None, f"in its mempool as {reply['result'][:16]}..., "
                                                    f"relayed to its peers"))
            continue
        code = (error.get("data") or {}).get("reject_reason")
        if code is None:
            raise DemoError(error["message"])
        answers.append(Answer(name, False, code, error["message"].removeprefix(f"{code}: ")))
    return answers


def run(world: World, say: Narrator) -> dict:
    cast = world.cast(NAME)
    alice, bob, carol = cast["alice"], cast["bob"], cast["carol"]
    people = [alice, bob, carol]
    first, last = world.nodes[0], world.nodes[-1]
    check = Checks()
    say.start(NAME, TITLE, SUMMARY, world.describe())
    world.fund(say, [(alice, 10 * COIN)], also_show=[bob, carol])
    coin = world.coin_of(alice)
    before = world.balances(people)

    to_bob = pay(alice, [coin], [(bob.owner, 6 * COIN)], world.net)
    to_carol = pay(alice, [coin], [(carol.owner, 6 * COIN)], world.net)
    txids = {to_bob.txid.hex(): "the payment to bob", to_carol.txid.hex(): "the payment to carol"}
    say.step("alice", "signs two payments of her one 10 TOY coin: 6 TOY to bob and 6 TOY to carol",
             hope="bob and carol each hand over 6 TOY worth of goods: 12 TOY of goods for a 10 TOY coin",
             note="Each payment is valid on its own: her coin, her signature, enough value.")

    answers = send_together(world, [(first, to_bob), (last, to_carol)])
    say.step("alice", f"sends the payment to bob to {first.name} and the payment to carol to "
                      f"{last.name}, at the same moment",
             hope="each node sees only one payment, so each accepts it", answers=answers)

    circulating = {tx.txid.hex() for tx, a in zip((to_bob, to_carol), answers) if a.accepted}

    def settled(node) -> dict | None:
        """Which payment ``node`` holds and how it refused the other, once gossip met."""
        pooled = set(txids) & world.mempool(node)
        if len(pooled) != 1:
            return None
        (kept,) = pooled
        (other,) = set(txids) - pooled
        refusal = next((r for r in world.rejects(node)
                        if r["id"] == other and r["reject_reason"] == CONFLICT), None)
        if refusal is None and other in circulating:
            return None  # it is on its way: wait for the refusal
        return {"kept": kept, "refused": other, "refusal": refusal}

    views = {}
    for node in world.nodes:
        views[node.name] = world.wait(lambda: settled(node), GOSSIP_SECONDS,
                                      f"{node.name} to settle on one of the two payments")
    for view in views.values():
        if view["refusal"]:
            source = view["refusal"]["source"]
            view["from"] = "alice, over RPC" if source == "rpc" else world.name_of(source)
    gossip = [Answer(name, False, CONFLICT, f"{txids[v['refused']]} (from {v['from']}): "
                                            f"{v['refusal']['message']}")
              for name, v in views.items() if v["refusal"]]
    rows = [[name, txids[v["kept"]], txids[v["refused"]],
             v["from"] if v["refusal"] else "never reached it"]
            for name, v in views.items()]
    say.step("the network", "gossips the payments from node to node; where two meet, the one that "
                            "arrives second is refused",
             answers=gossip,
             table={"title": "what each node holds", "columns": ["node", "keeps", "refuses",
                                                                 "refused from"],
                    "rows": rows},
             note="First seen wins: a node never replaces a payment by another spending the "
                  "same coin." + ("" if len(circulating) == 2 else
                                  " Here one node had already heard of the other payment when "
                                  "alice's arrived, so that one never got out."))

    def decided() -> dict | None:
        states = {n.name: {t: world.tx_state(t, n) for t in txids} for n in world.nodes}
        confirmed = {t for s in states.values() for t, c in s.items() if c and c >= 1}
        if len(confirmed) != 1:
            return None
        (winner,) = confirmed
        loser = next(t for t in txids if t != winner)
        done = all(s[winner] and s[winner] >= 1 and s[loser] is None for s in states.values())
        return done and {"winner": winner, "loser": loser, "states": states}
    refused_at_first = views[first.name]["refused"]
    world.explain(say, to_bob if refused_at_first == to_bob.txid.hex() else to_carol,
                  f"{txids[refused_at_first]}, sent again to {first.name}", first)
    miner = world.nodes[len(world.nodes) // 2]
    result = world.new_block(decided, say, miner,
                             "one payment confirmed and the other gone at every node")
    where = f" at {miner.name}" if world.own else ""
    after = world.balances(people)
    winner, loser = result["winner"], result["loser"]
    say.step("the network", f"mines a block{where}: it holds {txids[winner]}; every node now "
                            f"drops {txids[loser]}, whose coin is spent",
             balances=after, seen_at=world.nodes[0].name)

    paid = bob if winner == to_bob.txid.hex() else carol
    unpaid = carol if paid is bob else bob
    fee = coin.amount - sum(o.amount for o in to_bob.outputs)
    check("both nodes accepted the payment sent to them, or refused it as a conflict",
          all(a.accepted or a.reject_reason == CONFLICT for a in answers))
    check("every node kept one payment and refused the other with txn-mempool-conflict "
          "(or never received it, refused where it was sent)",
          len(views) == len(world.nodes)
          and all(v["refusal"] or v["refused"] not in circulating for v in views.values()))
    check("after the block, exactly one payment exists, the same at every node",
          all(s[winner] >= 1 and s[loser] is None for s in result["states"].values()))
    check(f"{paid.name} got 6 TOY, {unpaid.name} nothing, alice paid once",
          after[paid.name]["confirmed"] == 6 * COIN and after[unpaid.name]["confirmed"] == 0
          and after[alice.name]["confirmed"] == 10 * COIN - 6 * COIN - fee)
    check("no balance is negative", all(b["confirmed"] >= 0 for b in after.values()))
    outcome = check.outcome(sent=[a.to_json() for a in answers],
                            gossip={name: {"kept": v["kept"], "refused": v["refused"],
                                           "refused_from": v.get("from")}
                                    for name, v in views.items()},
                            confirmed=winner, dropped=loser, paid=paid.name,
                            to_bob=to_bob.txid.hex(), to_carol=to_carol.txid.hex(),
                            balances_before=before, balances_after=after)
    say.lesson(LESSON, outcome)
    return outcome
