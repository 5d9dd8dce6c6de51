"""The wallet: the keystore (scrypt + AES-GCM, mode 0600, atomic saves), the
payment builder (largest-first coins, exact fee, change, dust to the fee,
the insufficient-funds sentence, signatures the chain accepts, the
deliberate overspend), and the ``toychain wallet`` command run as real
processes against a real regtest node process: create, import (creating a
missing wallet), addresses, balances, a confirmed payment, history and
coins, ``--json`` before or after the command, tables that keep addresses
and txids whole in a narrow captured output, an overspend the node itself
refuses, and every bad input of the issue (mistyped address, bad amounts,
insufficient funds, wrong password, node down, node refusal), each giving
one clear error and a non-zero exit with the keystore file and the balances
unchanged.
"""

import json
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from chain.address import decode_address, encode_address
from chain.amounts import COIN, format_toy
from chain.coins import Coin
from chain.errors import RuleError
from chain.keys import public_key, verify
from chain.params import REGTEST
from chain.tx import INPUT_SIZE, OUTPUT_SIZE, OutPoint
from chain.sigcache import SignatureCache
from client.rpc import RpcClientError, rpc_call
from node.mempool import Mempool
from wallet import keystore as ks
from wallet.builder import (MAX_OVERSPEND_INPUTS, InsufficientFunds, Spendable, build_overspend,
                            build_payment, tx_size)
from wallet.client import NodeClient, spendable

from .helpers import Harness, owner, secret, wait_until

ROOT = Path(__file__).resolve().parent.parent
TOYCHAIN = str(ROOT / ".venv" / "bin" / "toychain")
ALICE = "toy1rqssmmpfh936zecsn2hj9ys9efr52fueemg7dm"
BOB = encode_address(owner("bob"))
PASSWORD = "correct horse battery staple"
TX_FEE_1IN_2OUT = 199  # units at 1 unit/byte: 4 + 1 + 133 + 1 + 2 * 28 + 4 bytes


# --------------------------------------------------------------------------
# helpers for real processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: list[str], password: str | None = PASSWORD, input: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TOYCHAIN_WALLET", None)
    env.pop("TOYCHAIN_NODE", None)
    env.pop("TOYCHAIN_WALLET_PASSWORD", None)
    env["COLUMNS"] = "40"  # narrow, and the output is captured: nothing may be cut to fit
    if password is not None:
        env["TOYCHAIN_WALLET_PASSWORD"] = password
    return subprocess.run([TOYCHAIN, *args], capture_output=True, text=True, env=env,
                          input=input if input is not None else "", timeout=timeout)


def wallet(path: Path, *args: str, node: str | None = None, as_json: bool = True,
           password: str | None = PASSWORD, input: str | None = None) -> subprocess.CompletedProcess:
    options = ["--wallet", str(path)]
    if node is not None:
        options += ["--node", node]
    if as_json:
        options.append("--json")
    return run(["wallet", *options, *args], password=password, input=input)


def ok_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return json.loads(result.stdout)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``Error: ...`` line of a failed command (no traceback)."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    return lines[0]


def only_error(result: subprocess.CompletedProcess) -> str:
    """A failure whose whole output is exactly one sentence."""
    line = error_line(result)
    assert result.returncode == 1, result
    assert result.stdout == "", result.stdout
    assert result.stderr.strip() == line, result.stderr
    return line


class NodeProcess:
    """``toychain node --network regtest`` as a real child process."""

    def __init__(self, datadir: Path, automine: float | None = None, miner: str = ALICE):
        self.datadir = datadir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        datadir.mkdir(parents=True, exist_ok=True)
        command = [TOYCHAIN, "node", "--network", "regtest", "--datadir", str(datadir),
                   "--port", str(self.port)]
        if automine is not None:
            command += ["--automine", str(automine), "--miner-address", miner]
        self.log = open(datadir.parent / f"{datadir.name}.log", "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        try:
            wait_until(self._answers, 30, f"the node at {self.url}")
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        assert self.process.poll() is None, f"the node exited with {self.process.returncode}"
        try:
            rpc_call(self.url, "getblockchaininfo", timeout=2)
        except RpcClientError:
            return False
        return True

    def call(self, method: str, *params):
        return rpc_call(self.url, method, list(params))

    def admin(self, method: str, *params):
        token = (self.datadir / ".cookie").read_text().strip()
        return rpc_call(self.url, method, list(params), token)

    def height(self) -> int:
        return self.call("getblockchaininfo")["height"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A regtest node mining every 0.3 s while its mempool is not empty, with
    15 blocks paying alice (genesis + 15: 7 coins of alice mature)."""
    server = NodeProcess(tmp_path_factory.mktemp("regtest") / "node", automine=0.3)
    try:
        result = run(["rpc", "--node", server.url, "--datadir", str(server.datadir),
                      "generatetoaddress", "15", ALICE])
        hashes = ok_json(result)
        assert len(hashes) == 15 and server.height() == 15
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def alice_wallet(node, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("alice") / "alice.json"
    ok_json(wallet(path, "create"))
    assert ok_json(wallet(path, "import-demo", "alice")) == {"name": "alice", "address": ALICE,
                                                             "created": False}
    return path


def balance(path: Path, url: str) -> dict:
    return ok_json(wallet(path, "balance", node=url))


def wait_confirmed(server: NodeProcess, txid: str, timeout: float = 30) -> dict:
    def confirmed():
        info = server.call("getrawtransaction", txid)
        return info if info["confirmations"] >= 1 else None
    return wait_until(confirmed, timeout, f"tx {txid} confirmed")


# --------------------------------------------------------------------------
# keystore


def test_keystore_round_trip_keeps_every_key_and_label(tmp_path):
    store = ks.Keystore()
    fresh = store.new_key()
    alice = store.import_demo("alice")
    labelled = store.new_key("savings")
    assert [k.label for k in store.keys] == ["address 1", "alice", "savings"]
    assert alice.address == ALICE and alice.secret == secret("alice")
    assert store.import_demo("alice") is alice and len(store.keys) == 3  # no duplicates
    path = tmp_path / "sub" / "wallet.json"
    ks.save(store, path, PASSWORD)
    loaded = ks.load(path, PASSWORD)
    assert [(k.secret, k.label) for k in loaded.keys] == [
        (fresh.secret, "address 1"), (secret("alice"), "alice"), (labelled.secret, "savings")]
    assert [k.address for k in loaded.keys] == [fresh.address, ALICE, labelled.address]
    assert loaded.by_owner()[decode_address(ALICE)].secret == secret("alice")
    document = json.loads(path.read_text())
    assert document["format"] == "toychain-wallet-1"
    assert document["kdf"] == {"name": "scrypt", "n": 2 ** 15, "r": 8, "p": 1,
                               "salt": document["kdf"]["salt"]}
    assert len(bytes.fromhex(document["kdf"]["salt"])) == 16
    assert len(bytes.fromhex(document["nonce"])) == 12
    assert document["cipher"] == "aes-256-gcm"
    text = path.read_text()
    for key in loaded.keys:  # nothing secret in clear
        assert key.secret.hex() not in text


def test_keystore_file_mode_is_0600_and_each_save_is_fresh(tmp_path):
    path = tmp_path / "wallet.json"
    store = ks.Keystore()
    store.import_demo("bob")
    ks.save(store, path, PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = json.loads(path.read_text())
    ks.save(store, path, PASSWORD)
    second = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["kdf"]["salt"] != second["kdf"]["salt"]
    assert first["nonce"] != second["nonce"]
    assert [k.secret for k in ks.load(path, PASSWORD).keys] == [secret("bob")]


def test_keystore_wrong_password_is_a_keystore_error(tmp_path):
    path = tmp_path / "wallet.json"
    store = ks.Keystore()
    store.import_demo("alice")
    ks.save(store, path, PASSWORD)
    before = path.read_bytes()
    with pytest.raises(ks.KeystoreError, match=r"^wrong password \(or the wallet file was altered\)$"):
        ks.load(path, PASSWORD + "x")
    with pytest.raises(ks.KeystoreError, match="wrong password"):
        ks.load(path, "")
    assert path.read_bytes() == before


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "salt"])
def test_keystore_tampered_file_is_a_keystore_error(tmp_path, field):
    path = tmp_path / "wallet.json"
    store = ks.Keystore()
    store.import_demo("alice")
    ks.save(store, path, PASSWORD)
    document = json.loads(path.read_text())
    holder = document["kdf"] if field == "salt" else document
    value = bytearray(bytes.fromhex(holder[field]))
    value[len(value) // 2] ^= 0x01
    holder[field] = value.hex()
    path.write_text(json.dumps(document))
    with pytest.raises(ks.KeystoreError, match="wrong password"):
        ks.load(path, PASSWORD)


def test_keystore_damaged_or_missing_files_are_keystore_errors(tmp_path):
    path = tmp_path / "wallet.json"
    with pytest.raises(ks.KeystoreError, match=r"no wallet at .*wallet\.json: create one"):
        ks.load(path, PASSWORD)
    path.write_text('{"format": "toychain-wallet-1", "kdf": ')
    with pytest.raises(ks.KeystoreError, match=r"^cannot read wallet .*wallet\.json: "):
        ks.load(path, PASSWORD)
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ks.KeystoreError, match=r"is not a toychain wallet$"):
        ks.load(path, PASSWORD)
    store = ks.Keystore()
    store.import_demo("alice")
    ks.save(store, path, PASSWORD)
    good = json.loads(path.read_text())
    for damage in ({**good, "nonce": "zz"}, {k: v for k, v in good.items() if k != "ciphertext"},
                   {**good, "kdf": "scrypt"}, {**good, "ciphertext": 5}):
        path.write_text(json.dumps(damage))
        with pytest.raises(ks.KeystoreError, match=r"^wallet file .*wallet\.json is damaged$"):
            ks.load(path, PASSWORD)
    path.write_text("[1, 2]")
    with pytest.raises(ks.KeystoreError):
        ks.load(path, PASSWORD)


def test_keystore_refuses_an_invalid_private_key():
    store = ks.Keystore()
    with pytest.raises(ks.KeystoreError, match="not a valid private key"):
        store.add(bytes(32), "zero")
    with pytest.raises(ks.KeystoreError, match="not a valid private key"):
        store.add(b"\xff" * 32, "above n")
    assert store.keys == []


def test_keystore_atomic_save_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "wallet.json"
    store = ks.Keystore()
    store.import_demo("alice")
    ks.save(store, path, PASSWORD)
    store.new_key("second")
    ks.save(store, path, PASSWORD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wallet.json"]
    before = path.read_bytes()
    # a save that fails before the rename keeps the previous wallet whole
    def fail(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ks.os, "replace", fail)
    store.new_key("third")
    with pytest.raises(ks.KeystoreError, match=r"cannot write .*wallet\.json: No space left on device"):
        ks.save(store, path, PASSWORD)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [k.label for k in ks.load(path, PASSWORD).keys] == ["alice", "second"]
    # restore puts back exact bytes, atomically too
    ks.save(ks.Keystore(), path, PASSWORD)
    ks.restore(path, before)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wallet.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --------------------------------------------------------------------------
# builder


def alice_store() -> ks.Keystore:
    store = ks.Keystore()
    store.import_demo("alice")
    return store


def coin(i: int, amount: int, confirmations: int = 5, name: str = "alice") -> Spendable:
    return Spendable(OutPoint(bytes([i]) * 32, i % 3), Coin(amount, owner(name), 1, False), confirmations)


def test_tx_size_is_the_exact_serialized_size():
    assert INPUT_SIZE == 133 and OUTPUT_SIZE == 28
    assert tx_size(1, 2) == 199
    assert tx_size(2, 2) == 332
    assert tx_size(1, 1) == 171
    assert tx_size(253, 2) == 4 + 3 + 253 * 133 + 1 + 56 + 4  # the varint grows at 253
    store = alice_store()
    coins = [coin(i, COIN) for i in range(1, 4)]
    payment = build_payment(store, coins, owner("bob"), 2 * COIN + 50, 1, owner("carol"), REGTEST.magic)
    assert len(payment.tx.inputs) == 3 and len(payment.tx.outputs) == 2
    assert payment.tx.size == len(payment.tx.raw) == tx_size(3, 2)


def test_builder_selects_largest_coins_first():
    store = alice_store()
    coins = [coin(1, 5 * COIN), coin(2, 20 * COIN), coin(3, 10 * COIN)]
    payment = build_payment(store, coins, owner("bob"), 12 * COIN, 1, owner("carol"), REGTEST.magic)
    assert [s.outpoint for s in payment.inputs] == [coins[1].outpoint]
    assert [(i.prev_txid, i.prev_index) for i in payment.tx.inputs] == [(bytes([2]) * 32, 2)]
    payment = build_payment(store, coins, owner("bob"), 25 * COIN, 1, owner("carol"), REGTEST.magic)
    assert [s.outpoint for s in payment.inputs] == [coins[1].outpoint, coins[2].outpoint]
    payment = build_payment(store, coins, owner("bob"), 31 * COIN, 1, owner("carol"), REGTEST.magic)
    assert [s.outpoint for s in payment.inputs] == [c.outpoint for c in (coins[1], coins[2], coins[0])]
    # equal amounts: the coin with more confirmations first
    twins = [coin(4, 7 * COIN, confirmations=2), coin(5, 7 * COIN, confirmations=9)]
    payment = build_payment(store, twins, owner("bob"), COIN, 1, owner("carol"), REGTEST.magic)
    assert [s.outpoint for s in payment.inputs] == [twins[1].outpoint]


@pytest.mark.parametrize("fee_rate", [1, 3, 250])
def test_builder_fee_is_rate_times_size_and_change_goes_to_the_change_owner(fee_rate):
    store = alice_store()
    coins = [coin(1, 10 * COIN), coin(2, 3 * COIN)]
    payment = build_payment(store, coins, owner("bob"), 11 * COIN, fee_rate, owner("carol"),
                            REGTEST.magic)
    assert len(payment.inputs) == 2
    assert payment.fee == fee_rate * tx_size(2, 2) == fee_rate * payment.tx.size
    assert payment.amount == 11 * COIN
    assert payment.change == 13 * COIN - 11 * COIN - payment.fee
    outputs = [(o.amount, o.owner) for o in payment.tx.outputs]
    assert outputs == [(11 * COIN, owner("bob")), (payment.change, owner("carol"))]
    assert sum(c.coin.amount for c in payment.inputs) - sum(o.amount for o in payment.tx.outputs) \
        == payment.fee
    assert payment.tx.version == 1 and payment.tx.locktime == 0
    assert all(txin.pubkey == public_key(secret("alice")) for txin in payment.tx.inputs)


def test_builder_dust_change_goes_to_the_fee():
    store = alice_store()
    total = 10 * COIN
    # change of 27 units < 1 unit/byte x 28 bytes: not worth its output
    payment = build_payment(store, [coin(1, total)], owner("bob"), total - 199 - 27, 1,
                            owner("carol"), REGTEST.magic)
    assert [(o.amount, o.owner) for o in payment.tx.outputs] == [(total - 226, owner("bob"))]
    assert payment.change == 0 and payment.fee == 226
    # change of exactly 28 units is kept
    payment = build_payment(store, [coin(1, total)], owner("bob"), total - 199 - 28, 1,
                            owner("carol"), REGTEST.magic)
    assert [o.amount for o in payment.tx.outputs] == [total - 227, 28]
    assert payment.change == 28 and payment.fee == 199
    # no change at all
    payment = build_payment(store, [coin(1, total)], owner("bob"), total - 199, 1,
                            owner("carol"), REGTEST.magic)
    assert [o.amount for o in payment.tx.outputs] == [total - 199]
    assert payment.change == 0 and payment.fee == 199
    # at 5 units/byte the dust line is 140 units
    payment = build_payment(store, [coin(1, total)], owner("bob"), total - 5 * 199 - 139, 5,
                            owner("carol"), REGTEST.magic)
    assert len(payment.tx.outputs) == 1 and payment.fee == 5 * 199 + 139


def test_insufficient_funds_says_what_you_have_and_need_fee_included():
    store = alice_store()
    coins = [coin(1, 5 * COIN), coin(2, 3 * COIN)]
    with pytest.raises(InsufficientFunds) as caught:
        build_payment(store, coins, owner("bob"), 10 * COIN, 2, owner("carol"), REGTEST.magic)
    assert str(caught.value) == (
        "insufficient funds: you have 8.00000000 TOY spendable, you need 10.00000000 TOY + fee "
        "0.00000664 TOY = 10.00000664 TOY")  # fee 2 x 332 bytes (2 inputs, 2 outputs)
    # enough for the amount but not for the fee
    with pytest.raises(InsufficientFunds) as caught:
        build_payment(store, [coin(1, 10 * COIN)], owner("bob"), 10 * COIN, 1, owner("carol"),
                      REGTEST.magic, immature=50 * COIN)
    assert str(caught.value) == (
        "insufficient funds: you have 10.00000000 TOY spendable (and 50.00000000 TOY not yet "
        "mature), you need 10.00000000 TOY + fee 0.00000199 TOY = 10.00000199 TOY")
    # nothing at all
    with pytest.raises(InsufficientFunds) as caught:
        build_payment(store, [], owner("bob"), COIN, 1, owner("carol"), REGTEST.magic)
    assert str(caught.value) == (
        "insufficient funds: you have 0.00000000 TOY spendable, you need 1.00000000 TOY + fee "
        "0.00000199 TOY = 1.00000199 TOY")


def test_signed_payment_passes_consensus_on_a_real_chain():
    h = Harness()
    h.mine_empty(2, reward_to="carol")
    h.mine_empty(11)  # alice: genesis + 11 coinbases; carol's 2 are mature now
    store = alice_store()
    store.import_demo("carol")
    change = store.new_key("change")
    height = h.chain.height + 1
    usable = [Spendable(op, c, height - c.height) for name in ("alice", "carol")
              for op, c in h.mature_coins_of(name)]
    assert sorted(c.coin.amount for c in usable) == [50 * COIN] * len(usable) and len(usable) >= 5
    amount = 4 * 50 * COIN + COIN  # needs five coins
    payment = build_payment(store, usable, owner("bob"), amount, 2, change.owner, REGTEST.magic)
    assert len(payment.inputs) == 5
    assert {s.coin.owner for s in payment.inputs} == {owner("alice"), owner("carol")}
    pool = Mempool(h.chain, sigcache=SignatureCache())  # as the node builds it
    assert pool.accept(payment.tx) == (payment.fee, []) and payment.fee == 2 * tx_size(5, 2)
    outcome = h.mine([payment.tx], fees=payment.fee)
    assert outcome.status == "connected", outcome
    assert h.balance("bob") == amount
    assert [c.amount for _, c in h.chain.store.coins_of(change.owner)] == [payment.change]
    assert payment.change == 5 * 50 * COIN - amount - payment.fee


def test_overspend_is_signed_for_real_and_refused_only_for_its_amount():
    """``build_overspend`` (send --overspend-anyway, the dashboard's try-it
    panel): the largest coins, one output paying the whole amount, valid
    signatures, so the chain's only objection is the overspend itself."""
    h = Harness()
    h.mine_empty(2, reward_to="carol")
    h.mine_empty(11)
    store = alice_store()
    store.import_demo("carol")
    height = h.chain.height + 1
    usable = [Spendable(op, c, height - c.height) for name in ("alice", "carol")
              for op, c in h.mature_coins_of(name)]
    have = sum(s.coin.amount for s in usable)
    tx, coins = build_overspend(store, usable, owner("bob"), have + COIN, REGTEST.magic)
    assert sorted(c.outpoint for c in coins) == sorted(s.outpoint for s in usable)
    assert [(o.amount, o.owner) for o in tx.outputs] == [(have + COIN, owner("bob"))]
    for index, (txin, spent) in enumerate(zip(tx.inputs, coins)):  # every signature holds
        assert verify(txin.pubkey, txin.signature, tx.sighash(index, spent.coin.txout, REGTEST.magic))
    with pytest.raises(RuleError) as refused:
        Mempool(h.chain, sigcache=SignatureCache()).accept(tx)  # as the node builds it
    assert refused.value.code == "bad-txns-in-belowout"
    assert refused.value.message == f"inputs {format_toy(have)} < outputs {format_toy(have + COIN)}"
    # at most MAX_OVERSPEND_INPUTS inputs, the largest coins
    many = [coin(i % 250 + 1, (i + 1) * 1000) for i in range(MAX_OVERSPEND_INPUTS + 5)]
    tx, coins = build_overspend(alice_store(), many, owner("bob"), 10**15, REGTEST.magic)
    assert len(tx.inputs) == len(coins) == MAX_OVERSPEND_INPUTS
    assert min(c.coin.amount for c in coins) == 6 * 1000  # the 5 smallest were left out


def test_client_spendable_splits_mature_and_immature_rows():
    rows = [
        {"txid": "11" * 32, "index": 0, "amount": 50 * COIN, "address": ALICE, "confirmations": 12,
         "coinbase": True, "mature": True},
        {"txid": "22" * 32, "index": 1, "amount": 50 * COIN, "address": ALICE, "confirmations": 3,
         "coinbase": True, "mature": False},
        {"txid": "33" * 32, "index": 2, "amount": 7, "address": BOB, "confirmations": 0,
         "coinbase": False, "mature": True},
    ]
    usable, immature = spendable(rows)
    assert immature == 50 * COIN
    assert [(s.outpoint, s.coin.amount, s.coin.owner, s.confirmations) for s in usable] == [
        (OutPoint(bytes.fromhex("11" * 32), 0), 50 * COIN, owner("alice"), 12),
        (OutPoint(bytes.fromhex("33" * 32), 2), 7, owner("bob"), 0)]


# --------------------------------------------------------------------------
# the CLI against a real node process


def test_cli_create_import_addresses_balance(node, tmp_path):
    path = tmp_path / "w" / "wallet.json"
    created = ok_json(wallet(path, "create"))
    assert created["wallet"] == str(path)
    first = created["address"]
    assert len(decode_address(first)) == 20
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [k.address for k in ks.load(path, PASSWORD).keys] == [first]
    # create never overwrites
    before = path.read_bytes()
    assert "already exists; refusing to overwrite it" in only_error(wallet(path, "create"))
    assert path.read_bytes() == before

    assert ok_json(wallet(path, "import-demo", "alice")) == {"name": "alice", "address": ALICE,
                                                             "created": False}
    fresh = ok_json(wallet(path, "new-address", "--label", "savings"))
    assert fresh["label"] == "savings" and fresh["address"] not in (first, ALICE)
    assert ok_json(wallet(path, "addresses")) == [
        {"address": first, "label": "address 1"}, {"address": ALICE, "label": "alice"},
        {"address": fresh["address"], "label": "savings"}]
    text = wallet(path, "addresses", as_json=False)
    assert text.returncode == 0 and first in text.stdout and "savings" in text.stdout

    rows = node.call("listunspent", [ALICE], 0)
    totals = balance(path, node.url)
    assert set(totals) == {"confirmed", "unconfirmed", "immature", "total"}
    assert all(isinstance(v, int) and v >= 0 for v in totals.values())
    assert totals["confirmed"] == sum(r["amount"] for r in rows if r["mature"] and r["confirmations"])
    assert totals["immature"] == sum(r["amount"] for r in rows if not r["mature"])
    assert totals["total"] == totals["confirmed"] + totals["unconfirmed"] + totals["immature"]
    assert totals["total"] == sum(r["amount"] for r in rows) >= 16 * 50 * COIN
    assert totals["confirmed"] >= 7 * 50 * COIN
    table = wallet(path, "balance", node=node.url, as_json=False)
    assert table.returncode == 0 and format_toy(totals["total"]).removesuffix(" TOY") in table.stdout
    # a wallet with no coins: all zeros
    empty = tmp_path / "empty.json"
    ok_json(wallet(empty, "create"))
    assert balance(empty, node.url) == {"confirmed": 0, "unconfirmed": 0, "immature": 0, "total": 0}
    assert ok_json(wallet(empty, "history", node=node.url)) == []
    assert ok_json(wallet(empty, "utxos", node=node.url)) == []


def test_cli_send_is_confirmed_and_shows_in_balance_history_utxos(node, alice_wallet, tmp_path):
    bob_path = tmp_path / "bob.json"
    ok_json(wallet(bob_path, "create"))
    ok_json(wallet(bob_path, "import-demo", "bob"))
    assert balance(bob_path, node.url) == {"confirmed": 0, "unconfirmed": 0, "immature": 0, "total": 0}
    alice_before = balance(alice_wallet, node.url)
    height_before = node.height()

    sent = ok_json(wallet(alice_wallet, "send", BOB, "1.5", "--yes", node=node.url))
    txid = sent["txid"]
    assert sent["amount"] == 150_000_000 and sent["to"] == BOB
    assert sent["fee"] == TX_FEE_1IN_2OUT  # one 50 TOY coin, payment + change, 1 unit/byte
    assert sent["change"] == 50 * COIN - 150_000_000 - TX_FEE_1IN_2OUT
    labels = [row["label"] for row in ok_json(wallet(alice_wallet, "addresses"))]
    assert labels == ["address 1", "alice", "change"]
    change_address = ok_json(wallet(alice_wallet, "addresses"))[2]["address"]

    info = wait_confirmed(node, txid)
    assert info["blockhash"] is not None
    tx_height = node.call("getblockheader", info["blockhash"])["height"]
    assert tx_height == height_before + 1 == node.height()
    decoded = node.call("decoderawtransaction", info["hex"])
    assert [(o["amount"], o["address"]) for o in decoded["vout"]] == [
        (150_000_000, BOB), (sent["change"], change_address)]

    assert balance(bob_path, node.url) == {"confirmed": 150_000_000, "unconfirmed": 0, "immature": 0,
                                           "total": 150_000_000}
    assert ok_json(wallet(bob_path, "history", node=node.url)) == [
        {"txid": txid, "height": tx_height, "delta": 150_000_000}]
    bob_coins = ok_json(wallet(bob_path, "utxos", node=node.url))
    assert [(c["txid"], c["index"], c["amount"], c["address"], c["coinbase"], c["mature"])
            for c in bob_coins] == [(txid, 0, 150_000_000, BOB, False, True)]
    assert bob_coins[0]["confirmations"] == 1

    history = ok_json(wallet(alice_wallet, "history", node=node.url))
    entry = [e for e in history if e["txid"] == txid]
    assert entry == [{"txid": txid, "height": tx_height, "delta": -(150_000_000 + TX_FEE_1IN_2OUT)}]
    assert all(e["height"] is not None for e in history)
    alice_coins = ok_json(wallet(alice_wallet, "utxos", node=node.url))
    assert [(c["index"], c["amount"]) for c in alice_coins
            if c["txid"] == txid] == [(1, sent["change"])]
    # alice also mined the block: +50 TOY and the fee back, -1.5 TOY - fee
    alice_after = balance(alice_wallet, node.url)
    assert alice_after["total"] - alice_before["total"] == 50 * COIN - 150_000_000
    assert alice_after["unconfirmed"] == 0
    text = wallet(bob_path, "history", node=node.url, as_json=False)
    assert text.returncode == 0 and "1.50000000 TOY" in text.stdout
    assert node.call("getmempoolinfo")["size"] == 0


def test_cli_every_bad_input_fails_cleanly_and_changes_nothing(node, alice_wallet):
    """Each failure: a non-zero exit, one ``Error:`` sentence (no traceback),
    and afterwards the same keystore bytes and the same ``balance --json``."""
    assert node.call("getmempoolinfo")["size"] == 0
    original = alice_wallet.read_bytes()
    keys_before = [(k.secret, k.label) for k in ks.load(alice_wallet, PASSWORD).keys]
    before = balance(alice_wallet, node.url)
    coins = ok_json(wallet(alice_wallet, "utxos", node=node.url))
    mature = [c for c in coins if c["mature"]]
    have = sum(c["amount"] for c in mature)
    immature = sum(c["amount"] for c in coins if not c["mature"])
    assert have == before["confirmed"] + before["unconfirmed"] and immature == before["immature"] > 0
    fee = tx_size(len(mature), 2)
    down = f"http://127.0.0.1:{free_port()}"
    typo = ALICE[:-1] + ("q" if ALICE[-1] != "q" else "p")
    swapped = BOB[:-2] + BOB[-1] + BOB[-2]
    assert swapped != BOB

    def send(*args, url=node.url, password=PASSWORD):
        return lambda: wallet(alice_wallet, "send", *args, node=url, as_json=False,
                              password=password)

    def other(*args, url=node.url, password=PASSWORD):
        return lambda: wallet(alice_wallet, *args, node=url, password=password)

    insufficient = (f"Error: insufficient funds: you have {format_toy(have)} spendable (and "
                    f"{format_toy(immature)} not yet mature), you need {{amount}} + fee "
                    f"{format_toy(fee)} = {{total}}")
    cases = [
        # mistyped addresses: the checksum catches them
        (send(typo, "1", "--yes"), 1,
         f"Error: address '{typo}' has a bad checksum or characters (a typo?)"),
        (send(swapped, "1", "--yes"), 1,
         f"Error: address '{swapped}' has a bad checksum or characters (a typo?)"),
        (send(ALICE.upper()[:-1] + "m", "1", "--yes"), 1, "mixes upper and lower case"),
        (send(BOB.replace("toy1", "tox1"), "1", "--yes"), 1, "has a bad checksum"),
        # amounts: negative, zero, not a number, more than 8 decimals
        (send(BOB, "-1", "--yes"), 2, "Error: Invalid value for AMOUNT: amount '-1' must be more than zero"),
        (send(BOB, "-0.5", "--yes"), 2, "amount '-0.5' must be more than zero"),
        (send(BOB, "0", "--yes"), 2, "Error: Invalid value for AMOUNT: amount '0' must be more than zero"),
        (send(BOB, "0.00000000", "--yes"), 2, "amount '0.00000000' must be more than zero"),
        (send(BOB, "abc", "--yes"), 2, "Error: Invalid value for AMOUNT: amount 'abc' is not a number"),
        (send(BOB, "1,5", "--yes"), 2, "amount '1,5' is not a number"),
        (send(BOB, "nan", "--yes"), 2, "amount 'nan' is not a finite number"),
        (send(BOB, "1.123456789", "--yes"), 2,
         "Error: Invalid value for AMOUNT: amount '1.123456789' has more than 8 decimals"),
        (send(BOB, "1e-9", "--yes"), 2, "amount '1e-9' has more than 8 decimals"),
        # insufficient funds: what you have and what you need, fee included
        (send(BOB, "100000", "--yes"), 1,
         insufficient.format(amount="100000.00000000 TOY", total=format_toy(100_000 * COIN + fee))),
        (send(BOB, "21000000", "--yes"), 1,
         insufficient.format(amount="21000000.00000000 TOY", total=format_toy(21_000_000 * COIN + fee))),
        # wrong password, for sending and for every other command that opens the keystore
        (send(BOB, "1", "--yes", password="not the password"), 1,
         "Error: wrong password (or the wallet file was altered)"),
        (other("balance", password="wrong"), 1, "Error: wrong password (or the wallet file was altered)"),
        (other("new-address", password="wrong"), 1, "Error: wrong password"),
        (other("import-demo", "carol", password="wrong"), 1, "Error: wrong password"),
        (other("history", password=""), 1, "Error: wrong password"),
        # a node that is down
        (send(BOB, "1", "--yes", url=down), 1, f"Error: cannot reach a node at {down}: "),
        (other("balance", url=down), 1, f"Error: cannot reach a node at {down}: "),
        (other("utxos", url=down), 1, f"Error: cannot reach a node at {down}: "),
    ]
    for command, code, expected in cases:
        result = command()
        line = error_line(result)
        assert result.returncode == code, (expected, result)
        assert expected in line, (expected, line)
        if code == 1:
            assert result.stderr.strip() == line and result.stdout == "", result  # one sentence
        assert alice_wallet.read_bytes() == original, expected
        assert balance(alice_wallet, node.url) == before, expected
    # asking, then declining: nothing is sent and nothing is saved
    declined = wallet(alice_wallet, "send", BOB, "1", node=node.url, as_json=False, input="n\n")
    assert declined.returncode == 1 and "Traceback" not in declined.stdout + declined.stderr
    assert "Pay 1.00000000 TOY to" in declined.stdout and "Aborted" in declined.stderr
    assert alice_wallet.read_bytes() == original
    assert balance(alice_wallet, node.url) == before
    assert node.call("getmempoolinfo")["size"] == 0
    assert [(k.secret, k.label) for k in ks.load(alice_wallet, PASSWORD).keys] == keys_before


def test_cli_tables_keep_addresses_and_txids_whole(node, alice_wallet):
    """Output captured (not a terminal) with COLUMNS=40: every address and txid
    of the JSON rows is on one line of the table, never cut or folded."""
    addresses = [key.address for key in ks.load(alice_wallet, PASSWORD).keys]
    client = NodeClient(node.url)
    for command, rows, keys in (
            ("addresses", [{"address": a} for a in addresses], ["address"]),
            ("history", client.history(addresses), ["txid"]),
            ("utxos", [{**c, "outpoint": f"{c['txid']}:{c['index']}"} for c in client.coins(addresses)],
             ["outpoint", "address"])):
        text = wallet(alice_wallet, command, node=node.url, as_json=False)
        assert text.returncode == 0 and "…" not in text.stdout, text
        lines = text.stdout.splitlines()
        assert rows
        for row in rows:
            assert any(all(row[key] in line for key in keys) for line in lines), (row, text.stdout)


def test_cli_options_go_before_or_after_the_command(node, tmp_path):
    """--json, --wallet and --node after the subcommand (the other tests put them before)."""
    path = tmp_path / "after.json"

    def after(command, *args):
        return ok_json(run(["wallet", command, *args, "--wallet", str(path), "--node", node.url, "--json"]))

    # after the subcommand they win over the group's
    elsewhere = ["wallet", "--wallet", str(tmp_path / "other.json"), "--node", "http://127.0.0.1:9"]
    assert ok_json(run([*elsewhere, "create", "--wallet", str(path), "--json"]))["wallet"] == str(path)
    assert not (tmp_path / "other.json").exists()
    path.unlink()

    made = after("create")
    assert made == {"wallet": str(path), "address": made["address"]}
    assert after("import-demo", "alice") == {"name": "alice", "address": ALICE, "created": False}
    fresh = after("new-address", "--label", "later")
    assert fresh == {"address": fresh["address"], "label": "later"}
    assert after("addresses") == ok_json(wallet(path, "addresses")) == [
        {"address": made["address"], "label": "address 1"}, {"address": ALICE, "label": "alice"},
        fresh]
    addresses = [made["address"], ALICE, fresh["address"]]
    coins = NodeClient(node.url).coins(addresses)
    assert after("utxos") == coins
    assert after("balance")["total"] == sum(c["amount"] for c in coins)
    assert after("history") == NodeClient(node.url).history(addresses)
    sent = after("send", BOB, "0.5", "--yes")
    assert (sent["amount"], sent["to"], sent["fee"]) == (50_000_000, BOB, TX_FEE_1IN_2OUT)
    wait_confirmed(node, sent["txid"])


def test_cli_import_demo_creates_a_missing_wallet(tmp_path):
    # the password from TOYCHAIN_WALLET_PASSWORD
    path = tmp_path / "new" / "wallet.json"
    assert ok_json(wallet(path, "import-demo", "bob")) == {"name": "bob", "address": BOB, "created": True}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret("bob").hex() not in path.read_text()  # encrypted
    assert [(k.secret, k.label) for k in ks.load(path, PASSWORD).keys] == [(secret("bob"), "bob")]
    # into the wallet that now exists: the key is added, as before
    assert ok_json(wallet(path, "import-demo", "carol")) == {
        "name": "carol", "address": encode_address(owner("carol")), "created": False}
    assert [k.label for k in ks.load(path, PASSWORD).keys] == ["bob", "carol"]
    text = wallet(tmp_path / "text.json", "import-demo", "alice", as_json=False)
    assert text.stdout.splitlines() == [
        f"Created {tmp_path / 'text.json'} (mode 0600). Imported demo account alice: {ALICE}"]

    # the password typed at the prompt, twice
    from click.testing import CliRunner

    from wallet.cli import wallet as wallet_group

    typed = tmp_path / "typed.json"
    result = CliRunner().invoke(wallet_group, ["--wallet", str(typed), "import-demo", "alice"],
                                input="s3cret\ns3cret\n", env={"TOYCHAIN_WALLET_PASSWORD": None})
    assert result.exit_code == 0, result.output
    assert "Wallet password: \nRepeat for confirmation: \n" in result.output
    assert [k.address for k in ks.load(typed, "s3cret").keys] == [ALICE]
    assert stat.S_IMODE(typed.stat().st_mode) == 0o600
    # two different passwords: asked again; no more answers: nothing is created
    mismatch = tmp_path / "mismatch.json"
    result = CliRunner().invoke(wallet_group, ["--wallet", str(mismatch), "import-demo", "alice"],
                                input="one\ntwo\n", env={"TOYCHAIN_WALLET_PASSWORD": None})
    assert result.exit_code == 1 and "Error: The two entered values do not match." in result.output
    assert "Aborted" in result.output and not mismatch.exists()


def test_cli_overspend_anyway_is_refused_by_the_node_itself(node, alice_wallet):
    """The wallet refuses an overspend before signing; ``--overspend-anyway``
    signs it all the same and the node refuses it, with its code and numbers,
    in its own list of refusals. Nothing changes: keystore, balance, mempool."""
    assert node.call("getmempoolinfo")["size"] == 0
    original = alice_wallet.read_bytes()
    before = balance(alice_wallet, node.url)
    coins = [c for c in ok_json(wallet(alice_wallet, "utxos", node=node.url)) if c["mature"]]
    have = sum(c["amount"] for c in coins)
    refusal = (f"Error: the node refused the transaction: bad-txns-in-belowout: inputs "
               f"{format_toy(have)} < outputs 100000.00000000 TOY")

    plain = wallet(alice_wallet, "send", BOB, "100000", "--yes", node=node.url, as_json=False)
    assert only_error(plain).startswith("Error: insufficient funds: you have ")
    rejects = len(node.call("getrecentrejects"))

    result = wallet(alice_wallet, "send", BOB, "100000", "--yes", "--overspend-anyway",
                    node=node.url, as_json=False)
    assert error_line(result) == refusal and result.returncode == 1
    assert result.stdout.splitlines() == [
        f"The wallet alone would stop here: {plain.stderr.strip().removeprefix('Error: ')}.",
        f"Signing it anyway (--overspend-anyway): {len(coins)} coins worth {format_toy(have)} pay "
        f"100000.00000000 TOY to {BOB}, with no change; the node decides."]
    newest = node.call("getrecentrejects")[0]
    assert (newest["kind"], newest["reject_reason"], newest["source"]) == ("tx", "bad-txns-in-belowout", "rpc")
    assert newest["message"] == f"inputs {format_toy(have)} < outputs 100000.00000000 TOY"
    assert len(node.call("getrecentrejects")) == rejects + 1

    # --json (before or after) asks nothing and ends the same way
    assert only_error(wallet(alice_wallet, "send", BOB, "100000", "--overspend-anyway", "--json",
                             node=node.url, as_json=False)) == refusal
    # asked, and declined: nothing is sent
    declined = wallet(alice_wallet, "send", BOB, "100000", "--overspend-anyway", node=node.url,
                      as_json=False, input="n\n")
    assert declined.returncode == 1 and "Aborted" in declined.stderr
    assert "the node decides. Send? [y/N]" in declined.stdout
    assert len(node.call("getrecentrejects")) == rejects + 2
    assert alice_wallet.read_bytes() == original  # no change key kept for an overspend
    assert balance(alice_wallet, node.url) == before
    assert node.call("getmempoolinfo")["size"] == 0
    # a payment the coins cover is an ordinary payment, flag or not
    sent = ok_json(wallet(alice_wallet, "send", BOB, "0.25", "--yes", "--overspend-anyway", node=node.url))
    assert (sent["amount"], sent["fee"]) == (25_000_000, TX_FEE_1IN_2OUT) and sent["change"] > 0
    wait_confirmed(node, sent["txid"])


def test_cli_node_refusal_names_the_code_and_restores_the_keystore(tmp_path):
    """An honest refusal: a chain of 25 unconfirmed txs is the mempool's limit
    (too-long-mempool-chain), so the wallet's 26th link is refused by the node."""
    server = NodeProcess(tmp_path / "quiet")  # no automine: nothing confirms
    try:
        server.admin("generatetoaddress", 11, ALICE)
        client = NodeClient(server.url)
        path = tmp_path / "carol.json"
        carol_address = ok_json(wallet(path, "create"))["address"]
        carol = ks.load(path, PASSWORD)
        carol_owner = decode_address(carol_address)
        # link 1: alice pays carol 10 TOY (unconfirmed)
        usable, _ = spendable(client.coins([ALICE]))
        payment = build_payment(alice_store(), usable, carol_owner, 10 * COIN, 1, owner("alice"),
                                REGTEST.magic)
        client.send(payment.tx)
        # links 2..25: carol pays bob from the change of her previous payment
        for _ in range(24):
            usable, _ = spendable(client.coins([carol_address]))
            assert len(usable) == 1 and usable[0].confirmations == 0
            payment = build_payment(carol, usable, owner("bob"), COIN // 100, 1, carol_owner,
                                    REGTEST.magic)
            client.send(payment.tx)
        assert server.call("getmempoolinfo")["size"] == 25

        original = path.read_bytes()
        before = balance(path, server.url)
        assert before["confirmed"] == 0 and before["unconfirmed"] == usable[0].coin.amount - COIN // 100 \
            - TX_FEE_1IN_2OUT
        result = wallet(path, "send", BOB, "0.01", "--yes", node=server.url, as_json=False)
        line = only_error(result)
        assert line == ("Error: the node refused the transaction: too-long-mempool-chain: "
                        "25 unconfirmed ancestors + this tx > 25")
        assert path.read_bytes() == original  # the change key saved for it was taken back
        assert [k.address for k in ks.load(path, PASSWORD).keys] == [carol_address]
        assert balance(path, server.url) == before
        assert server.call("getmempoolinfo")["size"] == 25
        reject = server.call("getrecentrejects")[0]
        assert (reject["kind"], reject["reject_reason"], reject["source"]) == (
            "tx", "too-long-mempool-chain", "rpc")
        # the same send goes through once a block has confirmed the chain
        server.admin("generatetoaddress", 1, ALICE)
        sent = ok_json(wallet(path, "send", BOB, "0.01", "--yes", node=server.url))
        assert server.call("getrawmempool") == [sent["txid"]]
        assert len(ks.load(path, PASSWORD).keys) == 2
    finally:
        server.stop()


@pytest.mark.parametrize("error, expected", [
    (RpcClientError("bad-txns-in-belowout: inputs 10.00000000 TOY < outputs 15.00000000 TOY", -26,
                    "bad-txns-in-belowout"),
     "Error: the node refused the transaction: bad-txns-in-belowout: inputs 10.00000000 TOY < "
     "outputs 15.00000000 TOY"),
    (RpcClientError("cannot reach a node at http://127.0.0.1:9: Connection refused"),
     "Error: cannot reach a node at http://127.0.0.1:9: Connection refused"),
])
def test_cli_send_failing_at_the_last_step_restores_the_keystore(tmp_path, monkeypatch, error,
                                                                  expected):
    """The node refuses (or vanishes) after the wallet saved its change key:
    the one sentence names the reject code, and the file is put back byte for byte."""
    from click.testing import CliRunner

    from wallet.cli import wallet as wallet_group

    path = tmp_path / "wallet.json"
    store = ks.Keystore()
    store.import_demo("alice")
    ks.save(store, path, PASSWORD)
    original = path.read_bytes()
    sent = []
    rows = [{"txid": "ab" * 32, "index": 0, "amount": 10 * COIN, "address": ALICE,
             "confirmations": 20, "coinbase": False, "mature": True}]

    def refuse(self, tx):
        sent.append(tx)
        raise error
    monkeypatch.setattr(NodeClient, "network", lambda self: REGTEST)
    monkeypatch.setattr(NodeClient, "coins", lambda self, addresses: rows if ALICE in addresses else [])
    monkeypatch.setattr(NodeClient, "send", refuse)
    saved = []
    real_save = ks.save
    monkeypatch.setattr(ks, "save", lambda *args: (saved.append(args[1]), real_save(*args)))
    result = CliRunner().invoke(wallet_group, ["--wallet", str(path), "--node", "http://127.0.0.1:9",
                                               "send", BOB, "1", "--yes"],
                                env={"TOYCHAIN_WALLET_PASSWORD": PASSWORD})
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == expected
    assert len(sent) == 1 and [o.amount for o in sent[0].outputs] == [COIN, 9 * COIN - 199]
    assert saved == [path]  # the change key was saved before sending ...
    assert path.read_bytes() == original  # ... and taken back on the failure
    assert [k.secret for k in ks.load(path, PASSWORD).keys] == [secret("alice")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wallet.json"]
