"""The Toychain consensus core: pure, synchronous, no asyncio and no sockets.

Read it in the order data flows (see README.md, "A tour of the code"):

    encoding   varints and the strict byte reader every decoder uses
    amounts    integer base units, MAX_MONEY, TOY <-> units for people
    keys       private/public keys, 64-byte low-S signatures, demo accounts
    address    Bech32 addresses of 20-byte owners
    tx         transactions, txid and the signature hash
    block      headers, blocks and the merkle root
    pow        compact targets (nBits), work, median time past, retargeting
    params     regtest and devnet parameters, subsidy, the genesis blocks
    errors     RuleError and the table of reject codes
    tx_rules   the rules a transaction must pass (pure functions)
    trace      the recorder a rule fills in when asked: what explaintransaction shows
    block_rules the rules a block must pass (pure functions)
    sigcheck   a block's signature checks: in the calling thread or worker processes
    coins      coins, coin views and block undo data
    storage    SQLite: blocks, block index, UTXO set, indexes
    orphans    blocks waiting for their parent, bounded by bytes
    chainstate the block index, best-chain choice, connect/disconnect, reorgs
"""
