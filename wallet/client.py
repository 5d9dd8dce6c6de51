"""What the wallet asks the node: its network, the coins and history of the
wallet's addresses, and to relay a signed transaction. Nothing secret leaves
the wallet: only addresses go out, only signed bytes are sent."""

from chain.address import decode_address
from chain.coins import Coin
from chain.params import NETWORKS, Network
from chain.tx import OutPoint, Tx
from client.rpc import ADDRESSES, rpc_call, rpc_pages

from .builder import Spendable


class NodeClient:
    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, *params):
        return rpc_call(self.url, method, list(params))

    def network(self) -> Network:
        return NETWORKS[self.call("getblockchaininfo")["network"]]

    def coins(self, addresses: list[str]) -> list[dict]:
        """Every unspent coin of these addresses, mempool outputs included,
        coins spent by pending transactions left out."""
        return [coin for i in range(0, len(addresses), ADDRESSES)
                for coin in rpc_pages(self.url, "listunspent", [addresses[i:i + ADDRESSES], 0])]

    def history(self, addresses: list[str]) -> list[dict]:
        """Per tx: the net change over all these addresses, oldest first."""
        merged: dict[str, dict] = {}
        for address in addresses:
            for item in rpc_pages(self.url, "getaddresshistory", [address]):
                entry = merged.setdefault(item["txid"], {"txid": item["txid"], "height": item["height"],
                                                         "delta": 0})
                entry["delta"] += item["delta"]
        return sorted(merged.values(), key=lambda e: (e["height"] is None, e["height"] or 0))

    def send(self, tx: Tx) -> str:
        return self.call("sendrawtransaction", tx.raw.hex())


def spendable(coin_rows: list[dict]) -> tuple[list[Spendable], int]:
    """(coins the next block may spend, total of immature coinbase coins)."""
    usable, immature = [], 0
    for row in coin_rows:
        if not row["mature"]:
            immature += row["amount"]
            continue
        coin = Coin(row["amount"], decode_address(row["address"]), 0, row["coinbase"])
        usable.append(Spendable(OutPoint(bytes.fromhex(row["txid"]), row["index"]), coin,
                                row["confirmations"]))
    return usable, immature
