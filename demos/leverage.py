"""leverage: a balance is not net worth, and a debt is not negative coins.

On the chain an address holds coins, and a number of coins cannot be
negative: every node checks every spend against the coins that exist. Yet
people do end up owing more than they have. How?

alice opens a margin account at a lender: she pays 8 TOY of collateral *on
chain* to the lender's address, and the lender lets her hold a position ten
times as large (80 TOY of ACME shares, 72 TOY of it lent). The price falls
15% overnight; a 10% fall was enough to wipe out her margin, so by the time
the lender sells, the shares fetch less than the loan. alice's account now
shows a negative equity: she owes the lender money.

That negative number lives in the *lender's own ledger* (plain bookkeeping,
Python integers of units below), not on the chain. On the chain, alice
still holds what she did not deposit, the lender holds the 8 TOY, and every
balance is >= 0. The lender cannot collect by taking alice's coins either:
spending them needs alice's key (``bad-txns-wrong-owner``,
``chain.tx_rules.check_input_authorization``). A debt is a claim someone
holds against a person, enforced by contracts and courts, not a negative
number of coins.
"""

from chain.amounts import COIN

from .narrator import Narrator, toy
from .txs import fee_for, pay, spend
from .world import Checks, World

NAME = "leverage"
TITLE = "Leverage: owing money without a negative balance"
SUMMARY = ("alice deposits 8 TOY on chain into a 10x margin account at a lender. The price falls "
           "15%, the account is liquidated, and alice owes the lender 4 TOY, in the lender's "
           "ledger. On the chain every balance stays >= 0.")
LESSON = ("A debt is a claim someone holds, not a negative number of coins: net worth can be "
          "negative, an on-chain balance cannot.")
DEPOSIT = 8 * COIN
LEVERAGE = 10
PRICE = 2 * COIN            # units of TOY per ACME share
FALL_PERCENT = 15


class MarginAccount:
    """The lender's ledger entry for one customer: integers of units only."""

    def __init__(self, deposit: int, leverage: int, price: int):
        self.deposit = deposit
        self.position = deposit * leverage          # value bought, in units
        self.loan = self.position - deposit          # what the lender put in
        self.shares = self.position // price
        self.price = price
        self.cash = 0                                # proceeds of a liquidation

    @property
    def value(self) -> int:
        return self.shares * self.price + self.cash

    @property
    def equity(self) -> int:
        """What the account is worth to alice: negative means she owes the lender."""
        return self.value - self.loan

    def reprice(self, price: int) -> None:
        self.price = price

    def liquidate(self) -> None:
        """Sell every share at the current price and repay what it covers."""
        self.cash, self.shares = self.shares * self.price, 0

    def rows(self) -> list[list[str]]:
        return [["ACME shares", str(self.shares)], ["price per share", toy(self.price)],
                ["shares and cash worth", toy(self.value)], ["owed to the lender (loan)", toy(self.loan)],
                ["alice's equity", toy(self.equity)]]


def run(world: World, say: Narrator) -> dict:
    cast = world.cast(NAME)
    alice, lender = cast["alice"], cast["lender"]
    people = [alice, lender]
    check = Checks()
    say.start(NAME, TITLE, SUMMARY, world.describe())
    world.fund(say, [(alice, 10 * COIN)], also_show=[lender])
    before = world.balances(people)

    deposit = pay(alice, [world.coin_of(alice)], [(lender.owner, DEPOSIT)], world.net)
    answer = world.send(world.nodes[0], deposit)
    world.confirm([deposit.txid.hex()], say)
    account = MarginAccount(DEPOSIT, LEVERAGE, PRICE)
    opened = account.rows()
    on_chain_open = world.balances(people)
    say.step("alice", f"pays {toy(DEPOSIT)} on chain to the lender as collateral for a "
                      f"{LEVERAGE}x margin account, and buys {toy(account.position)} of ACME shares "
                      f"with it, {toy(account.loan)} of them on credit",
             hope=f"a 10% rise would double her stake: {toy(account.position // 10)} more",
             answers=[answer], balances=on_chain_open, seen_at=world.nodes[0].name,
             table={"title": "the lender's ledger: alice's margin account",
                    "columns": ["entry", "value"], "rows": opened})

    new_price = PRICE * (100 - FALL_PERCENT) // 100
    account.reprice(new_price)
    account.liquidate()
    liquidated = account.rows()
    owed = -account.equity
    say.step("the lender", f"sees ACME open {FALL_PERCENT}% lower ({toy(PRICE)} -> {toy(new_price)} a "
                           f"share) and liquidates alice's account: the shares fetch "
                           f"{toy(account.cash)}, less than the {toy(account.loan)} loan",
             table={"title": "the lender's ledger after the liquidation",
                    "columns": ["entry", "before", "after"],
                    "rows": [[a[0], a[1], b[1]] for a, b in zip(opened, liquidated)]},
             note=f"At {LEVERAGE}x, a {100 // LEVERAGE}% fall wipes out the margin; the price "
                  f"jumped past that point overnight. alice's equity is {toy(account.equity)}: "
                  f"she owes the lender {toy(owed)}, a number in the lender's books.")

    remaining = world.coin_of(alice)
    grab = spend([remaining], lender, [(lender.owner, remaining.amount - fee_for(1, 1))], world.net)
    collect = world.send_everywhere(grab)
    say.step("the lender", f"tries to collect by spending alice's remaining {toy(remaining.amount)} "
                           f"coin to itself",
             hope="to take what alice owes straight from her wallet", answers=collect,
             note="Only alice's key can spend alice's coins: the lender has a claim, and must ask "
                  "her (or a court) to pay it.")

    world.explain(say, grab, "the lender's payment of alice's coin to itself")

    after = world.balances(people)
    net_worth = after[alice.name]["confirmed"] - owed
    say.step("the network", "shows the on-chain balances, next to alice's net worth",
             balances=after, seen_at=world.nodes[0].name,
             table={"title": "alice: balance and net worth", "columns": ["", "TOY"],
                    "rows": [["on-chain balance", toy(after[alice.name]["confirmed"])],
                             ["owed to the lender (off chain)", toy(-owed)],
                             ["net worth", toy(net_worth)]]},
             note="Her net worth is negative; her balance is not, and cannot be.")

    check("the deposit was paid and confirmed on chain",
          answer.accepted and all((world.tx_state(deposit.txid.hex(), n) or 0) >= 1 for n in world.nodes))
    check("the lender's ledger shows alice's equity negative after liquidation", account.equity < 0)
    check("alice's net worth is negative", net_worth < 0)
    check("every node refused the lender's grab with bad-txns-wrong-owner",
          all(a.reject_reason == "bad-txns-wrong-owner" for a in collect))
    check("every on-chain balance stays >= 0",
          all(b["confirmed"] >= 0 and b["confirmed"] + b["pending"] >= 0
              for view in (before, on_chain_open, after) for b in view.values()))
    check("the lender holds exactly the deposit on chain", after[lender.name]["confirmed"] == DEPOSIT)
    outcome = check.outcome(deposit=DEPOSIT, leverage=LEVERAGE, price_before=PRICE, price_after=new_price,
                            ledger={"loan": account.loan, "proceeds": account.cash,
                                    "equity": account.equity},
                            owed=owed, net_worth=net_worth, collect=[a.to_json() for a in collect],
                            balances_before=before, balances_after=after)
    say.lesson(LESSON, outcome)
    return outcome
