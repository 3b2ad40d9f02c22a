"""A playbook's `settings:` mapping -> `Settings`, every value checked with its place."""

from __future__ import annotations

import re
from typing import Any

from pushinstall.errors import InputError, Location
from pushinstall.source import (
    LocatedDict,
    LocatedList,
    boolean_value,
    check_keys,
    did_you_mean,
    kind_of,
)

# key -> (low, high, whole number only)
NUMBERS: dict[str, tuple[float, float, bool]] = {
    "forks": (1, 5000, True),
    "max_fail_percentage": (0, 100, False),
    "step_timeout": (1, 7 * 86400, False),
    "host_timeout": (1, 7 * 86400, False),
    "connect_timeout": (1, 3600, False),
    "retries": (0, 20, True),
}
SETTINGS_KEYS = (*NUMBERS, "serial", "any_errors_fatal", "reboot")
REBOOT_KEYS = ("mode", "after_reboot", "timeout")
REBOOT_CHOICES = {"mode": ("never", "if_needed"), "after_reboot": ("continue", "stop")}
_PERCENT = re.compile(r"^(\d{1,3})%$")


def _where(mapping: Any, key: str, fallback: Location | None) -> Location | None:
    return mapping.value_location(key) if isinstance(mapping, LocatedDict) else fallback


def number(value: Any, what: str, low: float, high: float, whole: bool,
           location: Location | None) -> float:
    """`value` checked to be a number (whole if asked) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            whole and not isinstance(value, int)):
        expected = "a whole number" if whole else "a number"
        raise InputError(f"{what} is {kind_of(value)}", location,
                         f"{expected} from {low:g} to {high:g}")
    if not low <= value <= high:
        raise InputError(f"{what} is {value:g}, out of range", location,
                         f"from {low:g} to {high:g}")
    return value


def choice(value: Any, what: str, choices: tuple[str, ...], location: Location | None) -> str:
    """`value` checked to be one of `choices` (with a did-you-mean)."""
    if value not in choices:
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else ""
        shown = f"'{value}'" if isinstance(value, str) else kind_of(value)
        raise InputError(f"{what} is {shown}{hint}", location, "one of: " + ", ".join(choices))
    return str(value)


def boolean(value: Any, what: str, location: Location | None) -> bool:
    """`value` checked to be true or false (or a word of `source.BOOLEAN_WORDS`)."""
    flag = boolean_value(value)
    if flag is None:
        raise InputError(f"{what} is {kind_of(value)}", location, "true or false")
    return flag


def _serial_item(value: Any, location: Location | None) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return int(number(value, "'serial'", 1, 1_000_000, True, location))
    match = _PERCENT.match(value) if isinstance(value, str) else None
    if match and 1 <= int(match.group(1)) <= 100:
        return str(value)
    shown = f"'{value}'" if isinstance(value, str) else kind_of(value)
    raise InputError(f"'serial' is {shown}", location,
                     "a batch size such as 5, a percentage such as '25%', or a list of them")


def serial(value: Any, location: Location | None) -> list[int | str]:
    """`serial`: one batch size or percentage, or a list of them."""
    if isinstance(value, list):
        if not value:
            raise InputError("'serial' is an empty list", location, "at least one batch size")
        return [_serial_item(item, value.item_location(i) if isinstance(value, LocatedList)
                             else location) for i, item in enumerate(value)]
    return [_serial_item(value, location)]


def parse_settings(data: Any, location: Location | None, settings: Any) -> Any:
    """Fill the `Settings` instance `settings` from the playbook's `settings:` mapping."""
    if data is None:
        return settings
    if not isinstance(data, LocatedDict):
        raise InputError(f"'settings' is {kind_of(data)}", location, "a mapping of settings")
    check_keys(data, SETTINGS_KEYS, "settings")
    for key, (low, high, whole) in NUMBERS.items():
        if key in data:
            value = number(data[key], f"'{key}'", low, high, whole, data.value_location(key))
            setattr(settings, key, int(value) if whole else float(value))
    if "serial" in data:
        settings.serial = serial(data["serial"], data.value_location("serial"))
    if "any_errors_fatal" in data:
        settings.any_errors_fatal = boolean(data["any_errors_fatal"], "'any_errors_fatal'",
                                            data.value_location("any_errors_fatal"))
    if "reboot" in data:
        _parse_reboot(data["reboot"], data.value_location("reboot"), settings.reboot)
    return settings


def _parse_reboot(data: Any, location: Location, policy: Any) -> None:
    if not isinstance(data, LocatedDict):
        raise InputError(f"'reboot' is {kind_of(data)}", location,
                         "a mapping with mode, after_reboot, timeout")
    check_keys(data, REBOOT_KEYS, "settings.reboot")
    for key, choices in REBOOT_CHOICES.items():
        if key in data:
            setattr(policy, key, choice(data[key], f"'reboot.{key}'", choices,
                                        _where(data, key, location)))
    if "timeout" in data:
        policy.timeout = float(number(data["timeout"], "'reboot.timeout'", 1, 86400, False,
                                      data.value_location("timeout")))
