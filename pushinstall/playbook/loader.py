"""Playbook loading: YAML -> `model.Playbook(settings, steps)`, and per-host rendering.

```yaml
name: ASR Mobility service
hosts: all                      # a host pattern of the inventory
vars: {asr_version: 9.62.0.0}   # lowest precedence
settings: {forks: 50, serial: [1, "25%"], reboot: {mode: if_needed}}
steps:
  - name: Staging directory     # unique
    directory: {path: 'C:\\Temp\\ASR'}
    when: site == 'ams'         # optional: timeout, retries, no_log
```

Loading checks everything that does not depend on a host (keys, types, choices, ranges,
template and `when` syntax, duplicate step names); `render_step` renders a step's arguments for
one host and checks them again. Every error is an `InputError` at `path:line:col`.
docs/playbook.md is the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pushinstall.argspec import STRING_LIST, Arg
from pushinstall.errors import InputError, Location
from pushinstall.model import Playbook, Settings, Step
from pushinstall.playbook.extra_vars import VAR_NAME
from pushinstall.playbook.settings import boolean, number, parse_settings
from pushinstall.playbook.templating import (
    Renderer,
    check_expression,
    check_syntax,
    is_template,
    render_value,
    resolve_variables,
    template_names,
)
from pushinstall.remote.winargv import windows_command_line
from pushinstall.resources import RESOURCE_TYPES, validate_args
from pushinstall.resources.schema import check_args, secret_fields, with_defaults
from pushinstall.secret import Secret
from pushinstall.source import (
    LocatedDict,
    LocatedList,
    check_keys,
    did_you_mean,
    kind_of,
    load_yaml,
)

PLAYBOOK_KEYS = ("name", "hosts", "vars", "settings", "steps")
STEP_KEYS = ("name", "when", "timeout", "retries", "no_log")
# Arguments naming a file on the controller when they are neither UNC nor URL.
CONTROLLER_FILES = {"file": "src"}


# ---------------------------------------------------------------- loading


def _text(value: Any, what: str, location: Location | None) -> str:
    if not isinstance(value, str) or not value.strip():
        shown = "an empty string" if isinstance(value, str) else kind_of(value)
        raise InputError(f"{what} is {shown}", location, "a non-empty string")
    return value


def _check_templates(value: Any, location: Location | None) -> None:
    """Check the syntax of every template string in `value`, at its own place."""
    if isinstance(value, LocatedDict):
        for key, item in value.items():
            _check_templates(item, value.value_location(key))
    elif isinstance(value, LocatedList):
        for index, item in enumerate(value):
            _check_templates(item, value.item_location(index))
    elif is_template(value):
        check_syntax(value, location)


def _load_vars(data: Any, location: Location) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, LocatedDict):
        raise InputError(f"'vars' is {kind_of(data)}", location, "a mapping of names to values")
    for key in data:
        if not isinstance(key, str) or not VAR_NAME.match(key):
            raise InputError(f"'{key}' is not a variable name", data.key_location(key),
                             "letters, digits and _, not starting with a digit")
    _check_templates(data, location)
    return data


def _step_type(step: LocatedDict, label: str) -> str:
    types = list(RESOURCE_TYPES)
    for key in step:
        if key not in STEP_KEYS and key not in RESOURCE_TYPES:
            raise InputError(
                f"unknown key '{key}' in {label}{did_you_mean(str(key), [*STEP_KEYS, *types])}",
                step.key_location(key),
                "a resource type (" + ", ".join(types) + ") or one of: " + ", ".join(STEP_KEYS),
            )
    found = [key for key in step if key in RESOURCE_TYPES]
    if not found:
        raise InputError(f"{label} has no resource type", step.location,
                         "one of: " + ", ".join(types))
    if len(found) > 1:
        raise InputError(f"{label} has two resource types, '{found[0]}' and '{found[1]}'",
                         step.key_location(found[1]), "one resource type per step")
    return found[0]


def _load_step(data: Any, index: int, location: Location) -> Step:
    if not isinstance(data, LocatedDict):
        raise InputError(f"step {index} is {kind_of(data)}", location,
                         "a mapping with 'name' and one resource type")
    if "name" not in data:
        raise InputError(f"step {index} has no 'name'", data.location, "a unique step name")
    name = _text(data["name"], f"the name of step {index}", data.value_location("name"))
    label = f"step '{name}'"
    type_name = _step_type(data, label)
    args = data[type_name]
    if args is None:
        args = LocatedDict()
        args.location = data.value_location(type_name)
        args.key_locations, args.value_locations = {}, {}
    validate_args(type_name, args, data.value_location(type_name))
    _check_templates(args, args.location if isinstance(args, LocatedDict) else None)
    step = Step(name=name, type=type_name, args=args, location=data.location)
    if "when" in data:
        when, where = data["when"], data.value_location("when")
        if isinstance(when, bool):
            when = "true" if when else "false"
        check_expression(_text(when, f"'when' of {label}", where), where)
        step.when, step.when_location = when, where
    if "timeout" in data:
        step.timeout = float(number(data["timeout"], f"'timeout' of {label}", 1, 7 * 86400,
                                    False, data.value_location("timeout")))
    if "retries" in data:
        step.retries = int(number(data["retries"], f"'retries' of {label}", 0, 20, True,
                                  data.value_location("retries")))
    if "no_log" in data:
        step.no_log = boolean(data["no_log"], f"'no_log' of {label}",
                              data.value_location("no_log"))
    return step


def _load_steps(data: Any, location: Location) -> list[Step]:
    if not isinstance(data, LocatedList):
        raise InputError(f"'steps' is {kind_of(data)}", location, "a list of steps")
    if not data:
        raise InputError("'steps' is an empty list", location, "at least one step")
    steps: list[Step] = []
    seen: dict[str, Location] = {}
    for index, item in enumerate(data):
        step = _load_step(item, index + 1, data.item_location(index))
        if step.name in seen:
            assert isinstance(item, LocatedDict)
            raise InputError(f"duplicate step name '{step.name}'", item.value_location("name"),
                             f"unique step names; first used at line {seen[step.name].line}")
        seen[step.name] = item.value_location("name")
        steps.append(step)
    return steps


def load_playbook(path: str, extra_vars: dict[str, Any] | None = None) -> Playbook:
    """Read and validate a playbook file; every problem is an `InputError` at its place.

    `extra_vars` (from `parse_extra_vars`) may be used by a templated `hosts:` pattern.
    """
    data = load_yaml(path)
    start = Location(str(path), 1, 1)
    if data is None:
        raise InputError("the playbook is empty", start, "a mapping with name, hosts and steps")
    if isinstance(data, LocatedList):
        raise InputError("the playbook is a list", start,
                         "one mapping with name, hosts and steps, not a list of plays")
    if not isinstance(data, LocatedDict):
        raise InputError(f"the playbook is {kind_of(data)}", start,
                         "a mapping with name, hosts and steps")
    check_keys(data, PLAYBOOK_KEYS, "the playbook", required=("name", "hosts", "steps"))
    name = _text(data["name"], "'name'", data.value_location("name"))
    hosts_where = data.value_location("hosts")
    hosts = _text(data["hosts"], "'hosts'", hosts_where)
    variables = _load_vars(data.get("vars"), data.value_location("vars"))
    if is_template(hosts):
        hosts = str(render_value(hosts, {**variables, **(extra_vars or {})}, hosts_where))
    settings = parse_settings(data.get("settings"), data.value_location("settings"), Settings())
    steps = _load_steps(data["steps"], data.value_location("steps"))
    return Playbook(name=name, hosts=hosts, vars=variables, settings=settings, steps=steps,
                    path=str(path), hosts_location=hosts_where)


def referenced_names(playbook: Playbook) -> frozenset[str]:
    """Every variable name the playbook's templates and `when`s use (its own vars' too)."""
    names = template_names([playbook.vars, *(step.args for step in playbook.steps)])
    for step in playbook.steps:
        if step.when:
            names |= check_expression(step.when, step.when_location)
    return names


# ---------------------------------------------------------------- per host


def host_variables(host: Any, playbook: Playbook, extra_vars: dict[str, Any] | None) -> dict[
        str, Any]:
    """One host's variables: extra vars > host vars (group vars merged in by the inventory)
    > playbook vars; plus `inventory_hostname` and `group_names`. Templated values are
    rendered where they can be (`render_step` reports the ones that cannot)."""
    merged = {**playbook.vars, **host.vars, **(extra_vars or {})}
    merged["inventory_hostname"] = host.name
    merged["group_names"] = list(getattr(host, "groups", []))
    return resolve_variables(merged)


def _controller_file(step: Step, args: dict[str, Any]) -> None:
    """A controller-side source file must exist; a relative one is the playbook's sibling."""
    key = CONTROLLER_FILES.get(step.type)
    if key is None:
        return
    value = args.get(key)
    if not isinstance(value, str) or value.startswith(("\\\\", "//")) or "://" in value:
        return
    where = args.value_location(key) if isinstance(args, LocatedDict) else step.location
    local = Path(value).expanduser()
    if not local.is_absolute() and step.location is not None:
        local = Path(step.location.path).parent / local
    try:
        found = local.is_file()
    except OSError as error:   # a name too long, a path through a file ...
        raise InputError(f"'{key}' of step '{step.name}': {error.strerror}: '{value[:80]}'",
                         where, "a UNC path, an http(s) URL, or a file on this machine relative "
                         "to the playbook") from None
    if not found:
        raise InputError(f"'{key}' of step '{step.name}': file not found: '{value}'", where,
                         "a UNC path, an http(s) URL, or a file on this machine relative to the "
                         "playbook")
    args[key] = str(local)


MAX_COMMAND_LINE = 32_767   # CreateProcess refuses a longer command line


def _command_line_fits(step: Step, args: dict[str, Any]) -> None:
    """A program's path and arguments, quoted as Windows will see them, must fit in one
    command line: refused here rather than by CreateProcess on every host."""
    arguments = args.get("arguments")
    if not isinstance(args.get("path"), str) or not isinstance(arguments, list):
        return
    if any(not isinstance(a, (str, int, float)) for a in arguments):
        return   # check_args already said what is wrong with it
    length = len(windows_command_line(args["path"], [str(a) for a in arguments]))
    if length > MAX_COMMAND_LINE:
        where = args.value_location("arguments") if isinstance(args, LocatedDict) \
            else step.location
        raise InputError(f"the command line of step '{step.name}' is {length} characters long",
                         where, f"at most {MAX_COMMAND_LINE}, the Windows limit")


def _no_secret_in_lists(schema: tuple[Arg, ...], args: dict[str, Any], step: Step) -> None:
    for arg in schema:
        value = args.get(arg.name)
        if arg.type == STRING_LIST and isinstance(value, list) and any(
                isinstance(item, Secret) for item in value):
            where = args.value_location(arg.name) if isinstance(args, LocatedDict) else None
            raise InputError(f"'{arg.name}' of step '{step.name}' holds a secret, which would "
                             "show on the target's command line", where,
                             "pass secrets with secret_file")


def render_step(step: Step, variables: dict[str, Any],
                renderer: Renderer | None = None) -> dict[str, Any]:
    """The step's arguments rendered for one host, checked again, defaults filled in, and
    every secret argument a `Secret`. Raises `InputError` at the offending string. Pass the
    same `renderer` (a `Renderer(variables)`) for every step of a host: it resolves each
    templated variable once."""
    renderer = renderer or Renderer(variables)
    if step.uses is None:
        step.uses = template_names(step.args)
    key = renderer.plain_key(step.uses)   # hosts with the same plain values share the result
    if key is not None and key in step.rendered:
        return step.rendered[key]
    module = RESOURCE_TYPES[step.type]
    rendered = renderer.render(step.args, step.location)
    try:
        check_args(module.ARGS, rendered, f"'{step.type}'", step.location,
                   getattr(module, "RULES", ()))
    except InputError as error:
        host = variables.get("inventory_hostname")
        suffix = f", after templating for host '{host}'" if host else ", after templating"
        raise InputError(error.message + suffix, error.location, error.expected) from None
    _no_secret_in_lists(module.ARGS, rendered, step)
    _command_line_fits(step, rendered)
    _controller_file(step, rendered)
    result = secret_fields(module.ARGS, with_defaults(module.ARGS, rendered))
    if key is not None:
        if len(step.rendered) >= 10_000:
            step.rendered.clear()
        step.rendered[key] = result   # shared by those hosts: nobody changes rendered args
    return result
