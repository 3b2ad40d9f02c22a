"""Connection settings from a host's merged vars: our names, and Ansible's as aliases.

Our own name wins over an Ansible alias when both are set. Defaults are safe: psrp over HTTPS
(5986) with certificate validation and Negotiate auth; Basic over plain HTTP is refused unless
`allow_unencrypted: true`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pushinstall.errors import InputError, Location
from pushinstall.inventory.secrets import SECRET_REF_FORMS
from pushinstall.model import AUTH_METHODS, TRANSPORTS, Connection
from pushinstall.secret import Secret
from pushinstall.source import boolean_value, did_you_mean, kind_of

# Ansible alias -> (our name, value translation or None)
_VALIDATE = {"validate": True, "ignore": False}
_SCHEME = {"https": True, "http": False}


def _first(value: Any) -> Any:
    """Ansible's `ansible_winrm_transport` may be a list or "a,b": the first one is used."""
    if isinstance(value, list):
        return _first(value[0]) if value else value
    return str(value).split(",")[0].strip()


def _plugin(value: Any) -> Any:
    """`ansible.windows.psrp` or `ansible.builtin.winrm` -> `psrp`, `winrm`."""
    return str(value).rsplit(".", 1)[-1] if isinstance(value, str) else value


ALIASES: dict[str, tuple[str, Callable[[Any], Any] | None]] = {
    "ansible_host": ("address", None),
    "ansible_port": ("port", None),
    "ansible_user": ("username", None),
    "ansible_password": ("password", None),
    "ansible_ssh_pass": ("password", None),
    "ansible_winrm_password": ("password", None),
    "ansible_connection": ("transport", _plugin),
    "ansible_winrm_transport": ("auth", _first),
    "ansible_psrp_auth": ("auth", None),
    "ansible_winrm_scheme": ("tls", lambda v: _SCHEME.get(str(v).lower(), v)),
    "ansible_psrp_protocol": ("tls", lambda v: _SCHEME.get(str(v).lower(), v)),
    "ansible_winrm_server_cert_validation": (
        "cert_validation", lambda v: _VALIDATE.get(str(v).lower(), v)),
    "ansible_psrp_cert_validation": (
        "cert_validation", lambda v: _VALIDATE.get(str(v).lower(), v)),
    "ansible_winrm_ca_trust_path": ("cert_validation", None),
    "ansible_psrp_ca_path": ("cert_validation", None),
    "ansible_psrp_connection_timeout": ("connect_timeout", None),
    "ansible_winrm_connection_timeout": ("connect_timeout", None),
    "ansible_psrp_read_timeout": ("read_timeout", None),
    "ansible_winrm_read_timeout_sec": ("read_timeout", None),
    "ansible_psrp_operation_timeout": ("operation_timeout", None),
    "ansible_winrm_operation_timeout_sec": ("operation_timeout", None),
    "ansible_host_key_checking": ("host_key_checking", None),
    "ansible_ssh_host_key_checking": ("host_key_checking", None),
    "ansible_psrp_cert_pem": ("certificate_pem", None),
    "ansible_winrm_cert_pem": ("certificate_pem", None),
    "ansible_psrp_cert_key_pem": ("certificate_key_pem", None),
    "ansible_winrm_cert_key_pem": ("certificate_key_pem", None),
}
# Ansible auth names that are ours by another name.
_AUTH_SYNONYMS = {"plaintext": "basic", "ssl": "basic"}

CONNECTION_VARS = (
    "transport", "address", "port", "auth", "tls", "cert_validation", "allow_unencrypted",
    "username", "password", "certificate_pem", "certificate_key_pem", "known_hosts",
    "host_key_checking", "connect_timeout", "read_timeout", "operation_timeout",
)
DEFAULT_PORTS = {("psrp", True): 5986, ("psrp", False): 5985, ("winrm", True): 5986,
                 ("winrm", False): 5985, ("ssh", True): 22, ("ssh", False): 22}

Where = Callable[[str], Location | None]
Warn = Callable[[Location | None, str], None]
_VALIDATION_ON = ("true", "yes", "validate")
_VALIDATION_OFF = ("false", "no", "ignore")
NO_VALIDATION_WARNING = "warning: certificate validation is off; anyone on the path can " \
    "impersonate the host (set cert_validation to the CA bundle that signed its certificate)"


def _bool(name: str, value: Any, where: Where) -> bool:
    flag = boolean_value(value)
    if flag is not None:
        return flag
    raise InputError(f"'{name}' is '{value}'", where(name), "true or false")


def _number(name: str, value: Any, where: Where, low: float, high: float) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        number = float(value)
        if not low <= number <= high:
            raise ValueError
    except ValueError:
        raise InputError(f"'{name}' is '{value}'", where(name),
                         f"a number from {low:g} to {high:g}") from None
    return number


def _choice(name: str, value: Any, choices: tuple[str, ...], where: Where) -> str:
    text = str(value).lower()
    text = _AUTH_SYNONYMS.get(text, text) if name == "auth" else text
    if text not in choices:
        raise InputError(f"'{name}' is '{value}'{did_you_mean(text, choices)}", where(name),
                         "one of: " + ", ".join(choices))
    return text


def _cert_validation(value: Any, where: Where, warn: Warn | None) -> bool | str:
    """True, False, or the path of an existing CA bundle (file or directory). Only the words
    false/no/ignore turn validation off, with a warning; an empty value, any other word, or a
    CA path that does not exist is refused, because a typo must never turn TLS off silently."""
    if isinstance(value, bool):
        enabled = value
    elif isinstance(value, str) and value.strip().lower() in _VALIDATION_ON + _VALIDATION_OFF:
        enabled = value.strip().lower() in _VALIDATION_ON
    elif isinstance(value, str) and value.strip():
        if not Path(value).exists():
            raise InputError(f"'cert_validation' is '{value}', not a word for on or off nor "
                             "an existing CA bundle", where("cert_validation"),
                             "true, false/ignore, or the path of an existing CA bundle")
        return value
    else:
        raise InputError(f"'cert_validation' is '{value}'", where("cert_validation"),
                         "true, false/ignore, or the path of an existing CA bundle")
    if not enabled and warn is not None:
        warn(where("cert_validation"), NO_VALIDATION_WARNING)
    return enabled


def _password(value: Any, where: Where) -> Secret:
    """The password setting as a `Secret`; a mapping or list that is no secret reference
    (`{vault: x}`) is refused rather than sent as its text."""
    if isinstance(value, Secret):
        return value
    if isinstance(value, (dict, list, bool)):
        raise InputError(f"'password' is {kind_of(value)}, not a password or a secret reference",
                         where("password"), SECRET_REF_FORMS)
    return Secret(str(value))


def _check_certificate(name: str, conn: Connection, s: dict[str, Any], where: Where) -> None:
    """`auth: certificate` (psrp, winrm) needs both PEM paths, or it fails at connect."""
    if conn.auth != "certificate" or conn.transport not in ("psrp", "winrm"):
        return
    for setting in ("certificate_pem", "certificate_key_pem"):
        if not getattr(conn, setting):
            raise InputError(
                f"host '{name}' uses auth: certificate without '{setting}'",
                where(setting if setting in s else "auth"),
                "certificate_pem and certificate_key_pem: paths of the client certificate "
                "and its key",
            )


def settings_from_vars(host_vars: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """Our connection setting names -> (value, the var that set it), Ansible aliases
    translated; where both are set in the same vars, our own name wins."""
    settings: dict[str, tuple[Any, str]] = {}
    for alias, (name, translate) in ALIASES.items():
        if alias in host_vars and name not in settings:
            value = host_vars[alias]
            settings[name] = (translate(value) if translate and value is not None else value,
                              alias)
    for name in CONNECTION_VARS:
        if name in host_vars:
            settings[name] = (host_vars[name], name)
    return settings


def build_connection(name: str, settings: dict[str, Any], where: Where,
                     host_location: Location | None, warn: Warn | None = None) -> Connection:
    """A `Connection` for host `name` from its settings (`settings_from_vars`, merged by
    precedence); bad values are `InputError`s at the location of the var that set them;
    `warn(location, text)` hears of settings that are allowed but unsafe."""
    s = settings
    conn = Connection()
    if "transport" in s:
        conn.transport = _choice("transport", s["transport"], TRANSPORTS, where)
    if "auth" in s:
        conn.auth = _choice("auth", s["auth"], AUTH_METHODS, where)
    for flag in ("tls", "allow_unencrypted", "host_key_checking"):
        if flag in s:
            setattr(conn, flag, _bool(flag, s[flag], where))
    if "cert_validation" in s:
        conn.cert_validation = _cert_validation(s["cert_validation"], where, warn)
    if "port" in s:
        conn.port = int(_number("port", s["port"], where, 1, 65535))
    for timeout in ("connect_timeout", "read_timeout", "operation_timeout"):
        if timeout in s:
            setattr(conn, timeout, _number(timeout, s[timeout], where, 0.1, 86400))
    for text in ("address", "username", "certificate_pem", "certificate_key_pem", "known_hosts"):
        if s.get(text) is not None:
            setattr(conn, text, str(s[text]))
    if s.get("password") is not None:
        conn.password = _password(s["password"], where)
    conn.address = conn.address or name
    if conn.port == 5985 and "tls" not in s and conn.transport in ("psrp", "winrm"):
        conn.tls = False        # as Ansible: port 5985 without a scheme means HTTP
    if conn.port is None and conn.transport != "lab":
        conn.port = DEFAULT_PORTS[(conn.transport, conn.tls)]
    _check_certificate(name, conn, s, where)
    if (conn.transport in ("psrp", "winrm") and conn.auth == "basic" and not conn.tls
            and not conn.allow_unencrypted):
        raise InputError(
            f"host '{name}' would send Basic credentials over plain HTTP", host_location,
            "tls: true, another auth, or allow_unencrypted: true to accept the risk",
        )
    return conn
