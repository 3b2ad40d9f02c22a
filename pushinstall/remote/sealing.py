"""Secret request fields, sealed to the agent's session key (docs/ops.md, "What a target's logs
can show").

The agent makes an RSA key pair when it is defined (`Get-PushinstallKey` answers
`PUSHINSTALL-KEY:{"modulus", "exponent"}`, base64 big-endian); the private half stays in its
process. `seal` replaces each secret field of a request (`SECRET_FIELDS`) with
`{"sealed": base64}`, RSA-OAEP with SHA-1 (what .NET 4.5's RSACryptoServiceProvider decrypts),
and the core opens them before it dispatches. `KeyPair` is the target's side in Python, for
the lab's endpoints and for tests.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pushinstall.argspec import CREDENTIAL, Arg
from pushinstall.remote.ops import OP_SCHEMAS

KEY_SENTINEL = "PUSHINSTALL-KEY:"
KEY_FUNCTION = "Get-PushinstallKey"
SEALED = "sealed"
# RSA-2048 with OAEP-SHA1 holds at most 214 bytes of plain text
MAX_SECRET_BYTES = 214
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(),
                     label=None)



def _secret_paths(schema: tuple[Arg, ...]) -> tuple[str, ...]:
    """The paths inside `args` of the arguments `schema` declares secret (a credential's
    secret is its nested password)."""
    return tuple(f"{arg.name}.password" if arg.type == CREDENTIAL else arg.name
                 for arg in schema if arg.secret)


# op -> paths inside `args` that hold a secret string ("credential.password": a nested field)
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    op: paths for op, schema in OP_SCHEMAS.items() if (paths := _secret_paths(schema))}


def public_key_of(output: str) -> rsa.RSAPublicKey | None:
    """The key in the `PUSHINSTALL-KEY:` line of `output`, or None."""
    for line in output.splitlines():
        line = line.strip()
        if line.startswith(KEY_SENTINEL):
            numbers = json.loads(line[len(KEY_SENTINEL):])
            modulus = int.from_bytes(base64.b64decode(numbers["modulus"]), "big")
            exponent = int.from_bytes(base64.b64decode(numbers["exponent"]), "big")
            return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    return None


def _walk(request: Any, change: Callable[[Any], Any]) -> Any:
    """A copy of `request` with `change` applied to every secret field it holds."""
    if not isinstance(request, dict) or not isinstance(request.get("args"), dict):
        return request
    op, args = request.get("op"), dict(request["args"])
    if op == "batch" and isinstance(args.get("requests"), list):
        args["requests"] = [_walk(inner, change) for inner in args["requests"]]
    for path in SECRET_FIELDS.get(str(op), ()):
        holder: Any = args
        *parents, name = path.split(".")
        for parent in parents:
            if not isinstance(holder.get(parent), dict):
                holder = None
                break
            holder[parent] = dict(holder[parent])
            holder = holder[parent]
        if isinstance(holder, dict) and holder.get(name) is not None:
            holder[name] = change(holder[name])
    return {**request, "args": args}


def has_secret(request: dict[str, Any]) -> bool:
    """True when `request` (or a request in its batch) holds a secret field."""
    found: list[bool] = []

    def note(value: Any) -> Any:
        found.append(True)
        return value

    _walk(request, note)
    return bool(found)


def seal(request: dict[str, Any], key: rsa.RSAPublicKey) -> dict[str, Any]:
    """`request` with each secret field encrypted to `key`; ValueError for one too long."""

    def encrypt(value: Any) -> Any:
        data = str(value).encode("utf-8")
        if len(data) > MAX_SECRET_BYTES:
            raise ValueError(f"a secret field is longer than {MAX_SECRET_BYTES} UTF-8 bytes")
        return {SEALED: base64.b64encode(key.encrypt(data, _OAEP)).decode("ascii")}

    return dict(_walk(request, encrypt))


class KeyPair:
    """The target's side: a session key pair (made when first needed), and the request with
    its secrets opened."""

    def __init__(self) -> None:
        self._key: rsa.RSAPrivateKey | None = None
        self._lock = threading.Lock()

    @property
    def _private(self) -> rsa.RSAPrivateKey:
        # locked: two sessions asking at once must not each make (and answer) a key
        with self._lock:
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key

    def key_line(self) -> str:
        """The line `Get-PushinstallKey` writes."""
        numbers = self._private.public_key().public_numbers()
        size = (numbers.n.bit_length() + 7) // 8
        body = {"modulus": base64.b64encode(numbers.n.to_bytes(size, "big")).decode(),
                "exponent": base64.b64encode(numbers.e.to_bytes(3, "big")).decode()}
        return KEY_SENTINEL + json.dumps(body, separators=(",", ":"))

    def open(self, request: dict[str, Any]) -> dict[str, Any]:
        """`request` with every sealed secret field decrypted."""

        def decrypt(value: Any) -> Any:
            if isinstance(value, dict) and set(value) == {SEALED} and self._key is not None:
                return self._private.decrypt(base64.b64decode(value[SEALED]), _OAEP).decode()
            return value

        return dict(_walk(request, decrypt))
