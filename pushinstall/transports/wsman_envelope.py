"""A WS-Man request's SOAP envelope written from a template string, not through ElementTree.

pypsrp builds each request's envelope as an ElementTree (a dozen header elements, MS-WSMV
2.2.4: Action, DataLocale, Locale, MaxEnvelopeSize, MessageID, OperationTimeout, ReplyTo,
ResourceURI, SessionId, To, OptionSet, SelectorSet) and serializes it with ElementTree's
pure-Python writer, for each of the ~8 requests of a host's check. `envelope` writes the same
text: the header from a template whose every value is escaped as ElementTree escapes it (text
and attribute values alike: data, never markup), the body (the element pypsrp's caller built)
by `write`, which writes an element as ElementTree does, and the namespace declarations on the
envelope, sorted by prefix, as ElementTree puts them. tests/test_wsman_envelope.py holds the
bytes to pypsrp's for every request a session sends, with hostile values. Anything it cannot
vouch for (a namespace pypsrp has no prefix for, an empty header value) returns None, and
pypsrp writes that envelope itself.
"""

from __future__ import annotations

import uuid
from typing import Any
from xml.etree import ElementTree as ET

from pypsrp.wsman import NAMESPACES

_PREFIX = {uri: prefix for prefix, uri in NAMESPACES.items()}
_HEADER_NAMESPACES = {"s": NAMESPACES["s"], "wsa": NAMESPACES["wsa"],
                      "wsman": NAMESPACES["wsman"], "wsmv": NAMESPACES["wsmv"]}
_ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
_HEADER = (
    '<s:Header><wsa:Action s:mustUnderstand="true">{action}</wsa:Action>'
    '<wsmv:DataLocale s:mustUnderstand="false" xml:lang="{data_locale}" />'
    '<wsman:Locale s:mustUnderstand="false" xml:lang="{locale}" />'
    '<wsman:MaxEnvelopeSize s:mustUnderstand="true">{size}</wsman:MaxEnvelopeSize>'
    '<wsa:MessageID>uuid:{message_id}</wsa:MessageID>'
    '<wsman:OperationTimeout>PT{timeout}S</wsman:OperationTimeout>'
    f'<wsa:ReplyTo><wsa:Address s:mustUnderstand="true">{_ANONYMOUS}</wsa:Address>'
    '</wsa:ReplyTo><wsman:ResourceURI s:mustUnderstand="true">{resource_uri}</wsman:ResourceURI>'
    '<wsmv:SessionId s:mustUnderstand="false">uuid:{session_id}</wsmv:SessionId>'
    '<wsa:To>{to}</wsa:To>')


class _Foreign(Exception):
    """Something `write` does not write as ElementTree would (a namespace without a prefix)."""


_TEXT_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_ATTRIBUTE_ESCAPES = (('"', "&quot;"), ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;"))


def _replaced(text: str, escapes: tuple[tuple[str, str], ...]) -> str:
    for char, entity in escapes:
        if char in text:
            text = text.replace(char, entity)
    return text


def escape_text(text: str) -> str:
    """Character data as ElementTree writes it (`xml.etree.ElementTree._escape_cdata`)."""
    return _replaced(text, _TEXT_ESCAPES)


def escape_attribute(text: str) -> str:
    """An attribute value as ElementTree writes it (`_escape_attrib`)."""
    return _replaced(escape_text(text), _ATTRIBUTE_ESCAPES)


def _qname(name: str, used: dict[str, str]) -> str:
    if name[:1] != "{":
        return name
    uri, local = name[1:].split("}", 1)
    prefix = _PREFIX.get(uri)
    if prefix is None:
        raise _Foreign(uri)
    if prefix != "xml":   # ElementTree never declares the xml prefix
        used[prefix] = uri
    return f"{prefix}:{local}"


def write(element: ET.Element, out: list[str], used: dict[str, str]) -> None:
    """Append `element` (its children and tail too) to `out` as ElementTree writes it inside a
    document; the namespaces it uses go into `used` (prefix: URI), to declare on the root."""
    tag = _qname(element.tag, used)
    out.append("<" + tag)
    for name, value in element.attrib.items():
        out.append(f' {_qname(name, used)}="{escape_attribute(value)}"')
    if element.text or len(element):
        out.append(">")
        if element.text:
            out.append(escape_text(element.text))
        for child in element:
            write(child, out, used)
        out.append(f"</{tag}>")
    else:
        out.append(" />")
    if element.tail:
        out.append(escape_text(element.tail))


def envelope(wsman: Any, action: str, resource_uri: str, resource: ET.Element | None,
             option_set: Any = None, selector_set: Any = None,
             timeout: int | None = None) -> tuple[str, bytes] | None:
    """(MessageID, the envelope's bytes) of a request of pypsrp `WSMan` `wsman`, as its
    `invoke` makes them; None when pypsrp must write it."""
    values = (action, wsman.data_locale, wsman.locale, resource_uri, wsman.transport.endpoint)
    if not all(isinstance(value, str) and value for value in values):
        return None
    message_id = str(uuid.uuid4()).upper()
    used = dict(_HEADER_NAMESPACES)
    out = [_HEADER.format(
        action=escape_text(action), data_locale=escape_attribute(wsman.data_locale),
        locale=escape_attribute(wsman.locale), size=escape_text(str(wsman.max_envelope_size)),
        message_id=message_id, timeout=escape_text(str(timeout or wsman.operation_timeout)),
        resource_uri=escape_text(resource_uri),
        session_id=escape_text(str(wsman.session_id).upper()),
        to=escape_text(wsman.transport.endpoint))]
    try:
        for wsman_set in (option_set, selector_set):
            if wsman_set is not None:
                write(wsman_set.pack(), out, used)
        out.append("</s:Header>")
        if resource is None:
            out.append("<s:Body />")
        else:
            out.append("<s:Body>")
            write(resource, out, used)
            out.append("</s:Body>")
    except _Foreign:
        return None
    declared = "".join(f' xmlns:{prefix}="{escape_attribute(used[prefix])}"'
                       for prefix in sorted(used))
    text = f"<s:Envelope{declared}>{''.join(out)}</s:Envelope>"
    return message_id, text.encode("utf-8", "xmlcharrefreplace")
