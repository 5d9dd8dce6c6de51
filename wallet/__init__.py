"""The Toychain wallet: keys stay here; the node only ever sees signed transactions.

    keystore   the encrypted key file (scrypt + AES-GCM, mode 0600)
    builder    coin selection, fees, change, signing
    client     what the wallet asks the node, over JSON-RPC
    cli        the ``toychain wallet`` commands
"""
