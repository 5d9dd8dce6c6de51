"""Building and solving blocks, and signing transactions: what a miner and a
wallet do, kept here so tests, benchmarks and the node share one version.

``solve`` searches nonces until the header's hash meets its own target; at
regtest difficulty that takes about two tries. ``sign_tx`` fills in every
input's signature over its sighash (PROTOCOL.md section 3).
"""

import hashlib
from dataclasses import replace

from .block import Block, Header, merkle_root
from .keys import sign
from .pow import compact_to_target
from .tx import Tx, TxIn, TxOut, coinbase_tx


def sign_tx(tx: Tx, secrets: list[bytes], spent: list[TxOut], magic: bytes) -> Tx:
    """``tx`` with input i signed by ``secrets[i]`` for the coin ``spent[i]``."""
    inputs = tuple(
        TxIn(txin.prev_txid, txin.prev_index, txin.pubkey,
             sign(secret, tx.sighash(index, coin, magic)))
        for index, (txin, secret, coin) in enumerate(zip(tx.inputs, secrets, spent)))
    return Tx(tx.version, inputs, tx.outputs, tx.locktime)


def solve(header: Header, max_tries: int | None = None) -> Header | None:
    """The header with the first nonce (from its own) whose hash meets its bits.
    Only the last 8 bytes (the nonce) change, so the SHA-256 state of the
    first 80 is computed once and copied for each try."""
    target = compact_to_target(header.bits)[0]
    prefix = hashlib.sha256(header.raw[:-8])
    nonce, end = header.nonce, (None if max_tries is None else header.nonce + max_tries)
    while (end is None or nonce < end) and nonce < 2 ** 64:
        inner = prefix.copy()
        inner.update(nonce.to_bytes(8, "little"))
        if int.from_bytes(hashlib.sha256(inner.digest()).digest(), "big") <= target:
            return replace(header, nonce=nonce)
        nonce += 1
    return None


def build_block(prev_hash: bytes, height: int, bits: int, time: int, txs: list[Tx],
                coinbase_outputs: list[TxOut]) -> Block:
    """An unsolved block (nonce 0): the coinbase for ``height``, then ``txs``."""
    all_txs = (coinbase_tx(height, coinbase_outputs), *txs)
    header = Header(1, prev_hash, merkle_root([tx.txid for tx in all_txs]), time, bits, 0)
    return Block(header, all_txs)


def mine_block(prev_hash: bytes, height: int, bits: int, time: int, txs: list[Tx],
               coinbase_outputs: list[TxOut]) -> Block:
    """``build_block`` then ``solve``: a block with valid proof of work."""
    block = build_block(prev_hash, height, bits, time, txs, coinbase_outputs)
    return Block(solve(block.header), block.txs)
