"""The keystore: private keys encrypted at rest, in one JSON file of mode 0600.

The password is stretched with scrypt (N=2^15, r=8, p=1, a fresh 16-byte
salt per save) into a 256-bit key that encrypts the key list with AES-GCM
(fresh 12-byte nonce per save). GCM authenticates the ciphertext, so a wrong
password or a tampered file fails cleanly (``KeystoreError``) instead of
yielding garbage keys. Saves are atomic (write a temp file, then rename), so
an interrupted save never loses the previous wallet.
"""

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from chain.address import encode_address
from chain.keys import demo_private_key, is_valid_private_key, owner_of, public_key

FORMAT = "toychain-wallet-1"
SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1}


class KeystoreError(Exception):
    """The wallet file cannot be read or written (the message says why)."""


@dataclass
class Key:
    secret: bytes
    label: str

    @property
    def pubkey(self) -> bytes:
        return public_key(self.secret)

    @property
    def owner(self) -> bytes:
        return owner_of(self.pubkey)

    @property
    def address(self) -> str:
        return encode_address(self.owner)


@dataclass
class Keystore:
    keys: list[Key] = field(default_factory=list)

    def add(self, secret: bytes, label: str) -> Key:
        if not is_valid_private_key(secret):
            raise KeystoreError("not a valid private key")
        for key in self.keys:
            if key.secret == secret:
                return key
        key = Key(secret, label)
        self.keys.append(key)
        return key

    def new_key(self, label: str = "") -> Key:
        while True:
            secret = secrets.token_bytes(32)
            if is_valid_private_key(secret):
                return self.add(secret, label or f"address {len(self.keys) + 1}")

    def import_demo(self, name: str) -> Key:
        return self.add(demo_private_key(name), name)

    def by_owner(self) -> dict[bytes, Key]:
        return {key.owner: key for key in self.keys}


def _derive(password: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, **SCRYPT).derive(password.encode("utf-8"))


def save(store: Keystore, path: Path, password: str) -> None:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    plain = json.dumps({"keys": [{"secret": k.secret.hex(), "label": k.label} for k in store.keys]})
    sealed = AESGCM(_derive(password, salt)).encrypt(nonce, plain.encode(), FORMAT.encode())
    document = {"format": FORMAT, "kdf": {"name": "scrypt", **SCRYPT, "salt": salt.hex()},
                "cipher": "aes-256-gcm", "nonce": nonce.hex(), "ciphertext": sealed.hex()}
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=1)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except OSError as error:
        raise KeystoreError(f"cannot write {path}: {error.strerror}") from None


def restore(path: Path, original: bytes) -> None:
    """Put back the exact bytes of an earlier wallet file (atomically)."""
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(original)
    os.replace(temp, path)


def load(path: Path, password: str) -> Keystore:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeystoreError(f"no wallet at {path}: create one with `toychain wallet create`") from None
    except (OSError, ValueError) as error:
        raise KeystoreError(f"cannot read wallet {path}: {error}") from None
    try:
        if document.get("format") != FORMAT:
            raise KeystoreError(f"{path} is not a toychain wallet")
        kdf = document["kdf"]
        key = Scrypt(salt=bytes.fromhex(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"],
                     p=kdf["p"]).derive(password.encode("utf-8"))
        plain = AESGCM(key).decrypt(bytes.fromhex(document["nonce"]),
                                    bytes.fromhex(document["ciphertext"]), FORMAT.encode())
    except InvalidTag:
        raise KeystoreError("wrong password (or the wallet file was altered)") from None
    except (KeyError, TypeError, ValueError, AttributeError):
        raise KeystoreError(f"wallet file {path} is damaged") from None
    store = Keystore()
    for item in json.loads(plain)["keys"]:
        store.add(bytes.fromhex(item["secret"]), item["label"])
    return store
