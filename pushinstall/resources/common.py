"""Helpers the resource types share: probe answers, diffs, values, fact conditions, programs.

One place each, so `package` and `command` (and every type's diffs) behave the same:

- `probe_failure` turns a probe that answered an error into a `Decision.FAIL` plan;
- `diff` / `shown` write the human diff `subject: before -> after`, secrets masked;
- `registry_value` / `same_value` put a desired registry value into the form the `registry`
  fact answers, so `"1"` from a template equals DWord `1`;
- `condition_query` / `condition_holds` / `describe_condition` evaluate a fact condition
  (`command.unless`; a service condition without `status` only asks that it exists);
- `run_program` runs `run_process` (with an optional `secret_file` written just before and
  removed right after, whatever happens) and maps its exit code through `return_codes`.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from pushinstall.errors import HostError
from pushinstall.model import Decision
from pushinstall.remote.ops import windows_command_line
from pushinstall.resources.base import Applied, ApplyContext, Plan
from pushinstall.resources.exit_codes import message_for
from pushinstall.secret import Secret

RESULT_OK = "ok"
RESULT_REBOOT = "reboot"
RESULT_FAILED = "failed"
# 98 (succeeded with warnings: restart needed) and 97 (a driver needs a mandatory restart) are
# UnifiedAgent.exe's restart codes (UASetupReturnValues); no installer uses them for a failure
PACKAGE_RETURN_CODES: dict[int, str] = {0: RESULT_OK, 3010: RESULT_REBOOT, 1641: RESULT_REBOOT,
                                        98: RESULT_REBOOT, 97: RESULT_REBOOT}
# UnifiedAgentConfigurator.exe may answer 3010 after registering
COMMAND_RETURN_CODES: dict[int, str] = {0: RESULT_OK, 3010: RESULT_REBOOT}
_SHORT_HASH = 12
_HASH_LOCK = threading.Lock()


# ---------------------------------------------------------------- probe answers


def probe_failure(found: dict[str, Any], what: str = "") -> Plan | None:
    """A `Decision.FAIL` plan when a probe answered an error (or nothing), else None.

    A fact query that fails (access denied, a malformed key) cannot be decided from: the step
    fails with the agent's message rather than guessing `change`.
    """
    for probe_id, fact in found.items():
        if fact is None:
            return Plan(Decision.FAIL,
                        reason=f"{what or probe_id}: no answer for probe '{probe_id}'")
        if isinstance(fact, dict) and isinstance(fact.get("error"), dict):
            error = fact["error"]
            kind = error.get("type", "Exception")
            return Plan(Decision.FAIL, reason=f"{what or probe_id}: cannot read it "
                                              f"({kind}: {error.get('message', '')})")
    return None


# ---------------------------------------------------------------- diffs and values


def shown(value: Any) -> str:
    """A value as a diff shows it: strings quoted, lists bracketed, secrets masked."""
    if value is None:
        return "(absent)"
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(item) for item in value) + "]"
    return str(value)


def diff(subject: str, before: Any, after: Any) -> str:
    """One human diff line, `subject: before -> after` (values given as display text)."""
    return f"{subject}: {before} -> {after}"


def short_hash(sha256: str | None) -> str:
    """The first characters of a sha256, enough for a person to tell two apart."""
    return f"sha256 {sha256[:_SHORT_HASH]}" if sha256 else "no sha256"


def reveal(value: Any) -> Any:
    """`value` with every `Secret` inside replaced by its value: only for an op's arguments."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, dict):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [reveal(item) for item in value]
    return value


def registry_value(value: Any, value_type: str) -> Any:
    """A desired value in the form the `registry` fact answers for `value_type`.

    DWord and QWord become integers (`"1"` from a template too), MultiString a list of
    strings, the string types a string. Raises ValueError for a value that cannot be one.
    """
    if isinstance(value, Secret):
        return Secret(str(registry_value(value.reveal(), value_type)), value.source)
    if value_type in ("DWord", "QWord"):
        if isinstance(value, bool):
            return int(value)
        number = int(str(value).strip(), 0) if isinstance(value, str) else int(value)
        limit = 2**32 if value_type == "DWord" else 2**64
        if not 0 <= number < limit:
            raise ValueError(f"{value_type} value out of range 0..{limit - 1}: {number}")
        return number
    if value_type == "MultiString":
        items = value if isinstance(value, (list, tuple)) else [value]
        return [str(item) for item in items]
    return str(value)


def same_value(found: Any, wanted: Any) -> bool:
    """True when a fact's value equals a desired one, numbers compared as numbers.

    Registry strings compare exactly (Windows keeps their case), numbers by value whatever
    their spelling (`"0x1"`, `1`), lists item by item.
    """
    wanted = wanted.reveal() if isinstance(wanted, Secret) else wanted
    if isinstance(found, bool) or isinstance(wanted, bool):
        return str(found).lower() == str(wanted).lower()
    if isinstance(found, int) and not isinstance(wanted, (list, tuple)):
        try:
            return found == registry_value(wanted, "QWord")
        except ValueError:
            return False
    if isinstance(found, list) or isinstance(wanted, (list, tuple)):
        items = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        return isinstance(found, list) and [str(i) for i in found] == [str(i) for i in items]
    return found is not None and str(found) == str(wanted)


def version_key(version: str) -> tuple[int, ...]:
    """A dotted version as numbers: 9.62.7096.1 < 9.62.7172.1 < 9.100.0.0 (text would not)."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


@lru_cache(maxsize=64)
def _hash_file(path: str, size: int, modified_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def local_sha256(path: str | Path) -> str:
    """The sha256 of a controller file, cached while its size and mtime stay the same (a
    fleet of hosts hashes a 500 MB installer once). OSError when it cannot be read."""
    name = os.fspath(Path(path).expanduser())
    stat = os.stat(name)
    with _HASH_LOCK:  # hosts planning at once wait for the one hash, not redo it each
        return _hash_file(name, stat.st_size, stat.st_mtime_ns)


# ---------------------------------------------------------------- fact conditions


def condition_query(condition: dict[str, Any]) -> dict[str, Any]:
    """The `facts` query (without id) a fact condition needs."""
    if "registry" in condition:
        where = condition["registry"]
        query = {"kind": "registry", "key": where["key"], "name": where.get("name", "")}
        if where.get("view"):
            query["view"] = str(where["view"])
        return query
    if "file" in condition:
        return {"kind": "file", "path": condition["file"], "hash": False}
    if "service" in condition:
        return {"kind": "service", "name": condition["service"]}
    if "product" in condition:
        product = condition["product"]
        return {"kind": "product",
                **{k: product[k] for k in ("product_id", "name") if product.get(k)}}
    if "ini" in condition:
        where = condition["ini"]
        return {"kind": "ini", "path": str(where["path"]), "section": str(where["section"]),
                "key": str(where["key"])}
    raise ValueError("a fact condition needs one of: registry, file, service, product, ini")


def condition_holds(condition: dict[str, Any], fact: dict[str, Any]) -> bool:
    """True when `fact` (the answer to `condition_query(condition)`) satisfies `condition`."""
    if "registry" in condition:
        return bool(fact.get("exists")) and same_value(fact.get("value"), condition["equals"])
    if "file" in condition:
        return bool(fact.get("exists"))
    if "service" in condition:
        wanted = condition.get("status")
        return bool(fact.get("exists")) and (
            not wanted or str(fact.get("status", "")).lower() == str(wanted).lower())
    if "product" in condition:
        return bool(fact.get("installed"))
    if "ini" in condition:
        return bool(fact.get("found")) and same_value(fact.get("value"), condition["equals"])
    raise ValueError("a fact condition needs one of: registry, file, service, product, ini")


def describe_condition(condition: dict[str, Any]) -> str:
    """A fact condition in words, e.g. `registry HKLM:\\...\\X = 'Succeeded'`."""
    if "registry" in condition:
        where = condition["registry"]
        return (f"registry {where['key']}\\{where.get('name', '')} = "
                f"{shown(condition.get('equals'))}")
    if "file" in condition:
        return f"file '{condition['file']}' exists"
    if "service" in condition:
        status = condition.get("status")
        return f"service '{condition['service']}' {f'is {status}' if status else 'exists'}"
    if "product" in condition:
        product = condition["product"]
        return f"product {product.get('product_id') or product.get('name')} is installed"
    if "ini" in condition:
        where = condition["ini"]
        return (f"'{where['path']}' [{where['section']}] {where['key']} = "
                f"{shown(condition.get('equals'))}")
    return "an unknown condition"


# ---------------------------------------------------------------- programs


def command_line(args: dict[str, Any]) -> str:
    """The line the program will get (path quoted, arguments joined by Windows rules)."""
    return windows_command_line(str(args["path"]), [str(a) for a in args.get("arguments") or []])


def return_code_table(args: dict[str, Any], default: dict[int, str]) -> dict[int, str]:
    """The step's `return_codes` (keys as integers) or `default`."""
    codes = args.get("return_codes")
    if not codes:
        return dict(default)
    return {int(code): str(result) for code, result in codes.items()}


def _outcome(result: dict[str, Any], args: dict[str, Any], default: dict[int, str]) -> Applied:
    """Map a `run_process` result through the return codes into what apply did."""
    code = result.get("exit_code")
    tails = {"stdout_tail": result.get("stdout_tail") or [],
             "stderr_tail": result.get("stderr_tail") or []}
    details = {"exit_code": code, "duration_s": result.get("duration_s"), **tails}
    if result.get("timed_out"):
        limit = args.get("timeout")
        return Applied(failed=True, details=details,
                       message=f"timed out{f' after {limit}s' if limit else ''} and was killed")
    if code is None:
        return Applied(failed=True, details=details, message="the exit code could not be read")
    outcome = return_code_table(args, default).get(int(code), RESULT_FAILED)
    messages = args.get("messages")
    if isinstance(messages, dict):
        messages = {int(key): str(text) for key, text in messages.items()}
    meaning = message_for(int(code), messages)
    text = f"exit {code}" + (f": {meaning}" if meaning else "")
    if outcome == RESULT_OK:
        return Applied(changed=True, message=text, details=details)
    if outcome == RESULT_REBOOT:
        return Applied(changed=True, reboot=True, details=details,
                       message=text if meaning else f"{text}: a restart is required")
    last = (tails["stderr_tail"] or tails["stdout_tail"] or [""])[-1].strip()
    if last and not meaning:
        text = f"{text}: {last}"
    log_tail = [str(line) for line in result.get("log_tail") or []]
    if log_tail:
        # the installer's own log says why; the exit code alone rarely does
        details["log_tail"] = log_tail
        text += f"\nlast {len(log_tail)} lines of {args['log']}:\n" + "\n".join(log_tail)
    return Applied(failed=True, message=text, details=details)


def run_program(ctx: ApplyContext, args: dict[str, Any], default: dict[int, str]) -> Applied:
    """Run `args["path"]` with its arguments; map the exit code through `return_codes`.

    A `secret_file` (`{path, content}`) is written with `write_secret` just before the
    process starts and removed right after, whatever the outcome — also when the run raises.
    """
    request: dict[str, Any] = {"path": str(args["path"]),
                               "arguments": [str(a) for a in args.get("arguments") or []]}
    if args.get("working_directory"):
        request["working_directory"] = str(args["working_directory"])
    if args.get("timeout"):
        request["timeout_s"] = int(args["timeout"])
    if args.get("log"):
        request["log_path"] = str(args["log"])
    secret_file = args.get("secret_file")
    if not secret_file:
        return _outcome(ctx.call("run_process", **request), args, default)
    secret_path = str(secret_file["path"])
    try:
        ctx.call("write_secret", path=secret_path, content=reveal(secret_file["content"]))
        result = ctx.call("run_process", **request)
    except BaseException:
        # the run's own error is what the user must see; a failed clean-up stays in the
        # engine's ledger (engine/secret_files.py): retried on reconnect, a warning if it fails
        try:
            ctx.call("remove_file", path=secret_path)
        except HostError as error:
            ctx.log(f"could not remove the secret file {secret_path}: {error}")
        raise
    ctx.call("remove_file", path=secret_path)
    return _outcome(result, args, default)
