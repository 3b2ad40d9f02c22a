"""Inventory secrets: `{env: NAME}`, `{file: PATH}`, `{prompt: true}`, and plaintext passwords.

A secret reference is resolved lazily, when a run needs it (`resolve_secrets`), so listing an
inventory or validating a playbook never prompts and never needs the secret to exist. A prompt
is asked once per run, on a TTY only.
"""

from __future__ import annotations

import getpass
import os
import sys
import threading
from pathlib import Path
from typing import Any

from pushinstall.errors import InputError, Location
from pushinstall.secret import MASK, Secret
from pushinstall.source import read_text

SECRET_SOURCES = ("env", "file", "prompt")
SECRET_REF_FORMS = "{env: NAME}, {file: PATH} or {prompt: true}"
# Var names whose plaintext values are secrets (masked, and worth a warning): a name holding
# one of these anywhere...
SECRET_NAME_PARTS = ("password", "passphrase", "passwd", "secret")
# ...or one of these as a whole `_`-separated word (`ansible_become_pass`, `vault_pass_file`).
SECRET_NAME_WORDS = ("pass", "pwd")

MAX_SECRET_BYTES = 64 * 1024   # a passphrase or password; /dev/zero must not fill memory
_PROMPTED: dict[str, str] = {}
_PROMPT_LOCK = threading.Lock()


class SecretRef(Secret):
    """A secret read from the environment, a file or a prompt the first time it is revealed."""

    __slots__ = ("kind", "location", "target", "var")

    def __init__(self, kind: str, target: str, location: Location, var: str) -> None:
        super().__init__("", source=f"{kind} {target}" if kind != "prompt" else "prompt")
        self.kind, self.target, self.location, self.var = kind, target, location, var

    def reveal(self) -> str:
        """The value; a missing variable or file, or a prompt without a TTY, is `InputError`."""
        if self._value:
            return self._value
        if self.kind == "env":
            value = os.environ.get(self.target)
            if value is None:
                raise InputError(f"environment variable '{self.target}' for '{self.var}' is not "
                                 "set", self.location, f"export {self.target}=... before the run")
        elif self.kind == "file":
            try:
                value = read_text(self.target, MAX_SECRET_BYTES,
                                  f"a regular UTF-8 text file of at most {MAX_SECRET_BYTES} bytes")
            except InputError as error:
                # At the var that names the file; never the file's line (it is the secret).
                raise InputError(f"secret file '{self.target}' for '{self.var}': "
                                 f"{error.message.split(' (byte')[0]}", self.location,
                                 error.expected) from None
            value = value.rstrip("\r\n")
        else:
            value = _prompt(self.var, self.location)
        self._value = value
        return value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretRef):
            return (self.kind, self.target, self.var) == (other.kind, other.target, other.var)
        return False

    def __hash__(self) -> int:
        return hash((self.kind, self.target, self.var))


def _prompt(var: str, location: Location) -> str:
    with _PROMPT_LOCK:
        if var in _PROMPTED:
            return _PROMPTED[var]
        if not sys.stdin.isatty():
            raise InputError(f"'{var}' asks for a prompt, but there is no terminal", location,
                             "run on a TTY, or use {env: NAME} or {file: PATH}")
        _PROMPTED[var] = getpass.getpass(f"{var}: ")
        return _PROMPTED[var]


def secret_ref(var: str, value: Any, location: Location, base: Path | None = None
               ) -> SecretRef | None:
    """A `SecretRef` when `value` is a one-key mapping `{env|file|prompt: ...}`, else None;
    `InputError` for any other one-key mapping under a secret name (`password: {vault: x}`).

    A relative `{file: PATH}` is relative to `base` (the inventory file's folder).
    """
    if not isinstance(value, dict) or len(value) != 1:
        return None
    kind, target = next(iter(value.items()))
    if kind not in SECRET_SOURCES:
        if is_secret_name(var):   # `password: {vault: x}` is no password
            raise InputError(f"'{var}: {{{kind}: ...}}' is not a secret reference", location,
                             SECRET_REF_FORMS)
        return None
    if kind == "prompt":
        if target is not True:
            raise InputError(f"'{var}: {{prompt: {target}}}'", location, "{prompt: true}")
        return SecretRef("prompt", "", location, var)
    if not isinstance(target, str) or not target:
        raise InputError(f"'{var}: {{{kind}: ...}}' needs a name", location,
                         f"{{{kind}: {'NAME' if kind == 'env' else 'PATH'}}}")
    if kind == "file" and base is not None and not Path(target).expanduser().is_absolute():
        target = str(base / target)
    return SecretRef(kind, target, location, var)


def is_secret_name(name: str) -> bool:
    """True for var names that hold secrets (passwords, passphrases): a name holding one of
    `SECRET_NAME_PARTS`, or one of `SECRET_NAME_WORDS` as a `_`-separated word."""
    lowered = name.lower()
    return (any(part in lowered for part in SECRET_NAME_PARTS)
            or any(word in SECRET_NAME_WORDS for word in lowered.split("_")))


def mask_secrets(value: Any, secret: bool = False) -> Any:
    """`value` fit to print: every `Secret` masked (with where it comes from), and every value
    under a secret-named key masked, at any depth and inside lists (`lab: {cs_passphrase: ..}`,
    `share_credential: {password: ..}`). `secret` says `value` itself sits under such a key."""
    if isinstance(value, Secret):
        return f"{MASK} ({value.source})" if value.source else MASK
    if isinstance(value, dict):
        return {str(key): mask_secrets(item, secret or is_secret_name(str(key)))
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(item, secret) for item in value]
    if secret and value is not None and value != "" and not isinstance(value, bool):
        return MASK
    return value


def resolve_secrets(values: Any) -> None:
    """Reveal every `SecretRef` in `values` (nested), so a run fails before it connects."""
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, Secret):
            value.reveal()
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
