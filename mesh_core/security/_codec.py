"""An optional payload codec: checkpoint blobs and run events encrypted at rest.

Redis and NATS store what the mesh gives them. With a codec configured
(``--payload-keys``, a file mounted from a Kubernetes Secret), gateways and runtimes seal
checkpoint blobs, pending writes, run events, remote task messages, scheduled jobs and
the user data of run records with AES-256-GCM before they leave the process; the LLM
gateway seals the answers it stores (for idempotency keys, in its response cache) and
the tool service the results of keyed calls. A dump of Redis or of a JetStream stream
shows no state: ids, key names, digests, claims, locks and tokens stay plain
(``deploy/README.md`` lists what stays plain). The data's own location (thread or run
id and field, idempotency or cache key) is bound in as associated data: a sealed value
copied to another thread, run or key does not open there.

Wire form: ``0xC1 'E' <key id: 4 bytes> <nonce: 12 bytes> <ciphertext + tag>``. 0xC1 is
never the first byte of msgpack or of UTF-8 JSON, so values written before the codec
was turned on still read (they pass through), and a key ring lets keys rotate: new
values use the first key, old ones open with whichever key their id names.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import grpc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mesh_core.config import ConfigError
from mesh_core.errors import MeshError

__all__ = [
    "PayloadCodec",
    "SealedDataError",
    "is_sealed",
    "load_payload_codec",
    "new_payload_key",
    "open_payload",
    "seal_payload",
]

_MAGIC = b"\xc1E"
_HEADER = len(_MAGIC) + 4 + 12


class SealedDataError(MeshError):
    """A sealed value that no key of the ring opens (wrong key, wrong place, tampered),
    or a sealed value read by a process without keys. DATA_LOSS: the bytes are there but
    this process cannot read them; the message names the data, never a key."""

    code = grpc.StatusCode.DATA_LOSS
    reason = "PAYLOAD_UNREADABLE"


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"lgmesh-payload-key\0" + key).digest()[:4]


class PayloadCodec:
    """Seals and opens payloads with a ring of AES-256 keys (the first one seals)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a payload codec needs at least one key")
        for key in keys:
            if len(key) != 32:
                raise ValueError("payload keys are 32 bytes (AES-256)")
        self._seal_id = _key_id(keys[0])
        self._seal = AESGCM(keys[0])
        self._ring = {_key_id(k): AESGCM(k) for k in keys}

    def seal(self, data: bytes, where: bytes) -> bytes:
        nonce = os.urandom(12)
        return _MAGIC + self._seal_id + nonce + self._seal.encrypt(nonce, data, where)

    def open(self, data: bytes, where: bytes) -> bytes:
        if not is_sealed(data):
            return data  # written before the codec was on
        aead = self._ring.get(bytes(data[2:6]))
        if aead is None:
            raise SealedDataError(
                "sealed with a key that is not in the key ring", reason="PAYLOAD_KEY_UNKNOWN"
            )
        try:
            return aead.decrypt(bytes(data[6:_HEADER]), bytes(data[_HEADER:]), where)
        except InvalidTag:
            raise SealedDataError("sealed value does not open here (key, place or bytes)") from None


def is_sealed(data: bytes) -> bool:
    return len(data) > _HEADER and data[:2] == _MAGIC


def seal_payload(codec: PayloadCodec | None, data: bytes, where: str) -> bytes:
    """``data`` sealed for ``where`` (a thread, run, ... id), or as it is without a codec."""
    return data if codec is None else codec.seal(data, where.encode())


def open_payload(codec: PayloadCodec | None, data: bytes, what: str, where: str) -> bytes:
    """``data`` opened for ``where``; plain values pass through. ``what`` names the data in
    the error (e.g. "checkpoint of thread t1"), raised when it does not open here."""
    try:
        if codec is None:
            if is_sealed(data):
                raise SealedDataError(
                    "sealed, and this service has no payload keys (--payload-keys)",
                    reason="PAYLOAD_KEYS_MISSING",
                )
            return data
        return codec.open(data, where.encode())
    except SealedDataError as exc:
        raise SealedDataError(f"{what} cannot be read: {exc.message}", reason=exc.reason) from None


def load_payload_codec(path: str | Path | None) -> PayloadCodec | None:
    """The codec whose keys are in ``path`` (one base64 32-byte key per line, newest
    first); None when ``path`` is empty (payloads stored as they are)."""
    if not path:
        return None
    p = Path(path)
    try:
        lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise ConfigError(f"payload key file {str(p)!r}: {exc.strerror or exc}") from None
    keys = []
    for n, line in enumerate(lines, 1):
        try:
            key = base64.b64decode(line, validate=True)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ConfigError(
                f"payload key file {str(p)!r} line {n}: expected a base64 32-byte key"
            )
        keys.append(key)
    if not keys:
        raise ConfigError(f"payload key file {str(p)!r} holds no key")
    return PayloadCodec(keys)


def new_payload_key() -> str:
    """A fresh key, base64 (for ``lgmesh dev`` and the docs: ``openssl rand -base64 32``)."""
    return base64.b64encode(os.urandom(32)).decode()
