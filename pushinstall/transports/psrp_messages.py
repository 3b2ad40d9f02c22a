"""The XML of the PSRP messages a check sends, made once per run from a template.

Opening a runspace pool sends SESSION_CAPABILITY and INIT_RUNSPACEPOOL, and every pipeline a
CREATE_PIPELINE ([MS-PSRP] 2.2.2.1, 2.2.2.2, 2.2.2.10). Their XML is the same for every host
and every call but for the values of the pipeline's parameters: the runspace pool's and the
pipeline's GUIDs travel in the message header ([MS-PSRP] 2.2.1: RPID, PID), outside the XML,
and pypsrp packs that header itself. pypsrp serializes each of these messages anew, through
ElementTree (a few hundred elements for the host information and the command's merge
settings): 10 % of a compliance check's controller CPU.

`serialized` keys a message by everything pypsrp's serializer reads from it (`_shape`),
with the non-empty str and bytes values of the pipeline's parameters as slots; the first time a
shape is seen, pypsrp itself serializes it with a placeholder in each slot, and the text is
cut at the placeholders. Later messages of that shape are the cut text with each slot's value
serialized as pypsrp serializes a primitive (its `_xHHHH_` escaping of a string, base64 of
bytes) and escaped as ElementTree escapes text: the same bytes, as
tests/test_psrp_messages.py holds, hostile values included.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Hashable
from typing import Any
from xml.etree import ElementTree as ET

from pypsrp.complex_objects import CommandParameter, ComplexObject
from pypsrp.messages import CreatePipeline, InitRunspacePool, SessionCapability
from pypsrp.serializer import Serializer

from pushinstall.transports.wsman_envelope import escape_text

TEMPLATED = (SessionCapability, InitRunspacePool, CreatePipeline)
# what every ComplexObject of a class holds alike (its metadata, built from constants in
# __init__) or is left unset on an outgoing message; the attribute names of the metadata
# go into the shape anyway, so a class whose metadata varied would not share a template
_CLASS_META = frozenset(("_adapted_properties", "_extended_properties", "_property_sets",
                         "_types", "_string_map", "_xml"))
_MARK = "\ue000pushinstall-slot-{}\ue001"   # private-use characters: pypsrp leaves them be
_MAX_TEMPLATES = 64


class _Unknown(Exception):
    """A value whose serialization the shape cannot vouch for: no template."""


def _shape(value: Any, slots: list[Any]) -> Hashable:
    """What pypsrp's serializer reads of `value`; the parameter values it leaves out (as
    slots) are appended to `slots`."""
    if value is None or isinstance(value, str | bool | int | float):
        return (type(value), value)
    if isinstance(value, list | tuple):
        return (type(value), tuple(_shape(item, slots) for item in value))
    if not isinstance(value, ComplexObject):
        raise _Unknown(type(value).__name__)
    if isinstance(value, CommandParameter) and isinstance(value.value, str | bytes) \
            and value.value:
        slots.append(value.value)
        return (CommandParameter, _shape(value.name, slots), type(value.value))
    fields = vars(value)
    return (type(value), tuple(name for name, _ in value._extended_properties),
            tuple(name for name, _ in value._adapted_properties),
            tuple(name for name, _ in value._property_sets), tuple(value._types),
            tuple((name, _shape(field, slots)) for name, field in fields.items()
                  if name not in _CLASS_META))


class _Template:
    """A message's serialized text cut at its slots: len(parts) == slots + 1."""

    def __init__(self, parts: list[bytes], kinds: list[type]) -> None:
        self.parts = parts
        self.kinds = kinds

    def fill(self, serializer: Serializer, values: list[Any]) -> bytes:
        out = [self.parts[0]]
        for value, part in zip(values, self.parts[1:], strict=True):
            if isinstance(value, bytes):
                out.append(base64.b64encode(value))
            else:
                text = serializer._serialize_string(value) or ""
                out.append(escape_text(text).encode("utf-8", "xmlcharrefreplace"))
            out.append(part)
        return b"".join(out)


def _placeholder(index: int, kind: type) -> str | bytes:
    mark = _MARK.format(index)
    return mark.encode("utf-8") if kind is bytes else mark


def _placeholder_text(index: int, kind: type) -> bytes:
    """The placeholder as it appears in the serialized text."""
    mark = _placeholder(index, kind)
    return base64.b64encode(mark) if isinstance(mark, bytes) else mark.encode("utf-8")


def _build(message: Any, slots: list[Any]) -> _Template | None:
    """Serialize `message` with placeholders in its slots (pypsrp's own serializer) and cut
    it there; None when a placeholder does not come out once, verbatim."""
    kinds = [type(value) for value in slots]
    parameters = _parameters(message)
    originals = [parameter.value for parameter in parameters]
    index = 0
    try:
        for parameter in parameters:
            if isinstance(parameter.value, str | bytes) and parameter.value:
                parameter.value = _placeholder(index, kinds[index])
                index += 1
        element = Serializer().serialize(message)
    finally:
        for parameter, original in zip(parameters, originals, strict=True):
            parameter.value = original
    if element is None or index != len(slots):
        return None
    text = ET.tostring(element, encoding="utf-8", method="xml")
    parts = []
    for index, kind in enumerate(kinds):
        mark = _placeholder_text(index, kind)
        if text.count(mark) != 1:
            return None
        head, text = text.split(mark)
        parts.append(head)
    parts.append(text)
    return _Template(parts, kinds)


def _parameters(message: Any) -> list[CommandParameter]:
    pipeline = message.pipeline if isinstance(message, CreatePipeline) else None
    if pipeline is None:
        return []
    return [parameter for command in pipeline.commands or [] for parameter in command.args]


class Templates:
    """The templates of one process, by message shape (at most `_MAX_TEMPLATES`)."""

    def __init__(self) -> None:
        self._made: dict[Hashable, _Template | None] = {}
        self._lock = threading.Lock()

    def serialized(self, message: Any, serializer: Serializer) -> bytes | None:
        """The XML of `message` as pypsrp's `serializer` would write it (without the XML
        declaration, as pypsrp's Message.pack has it), or None when it is not a templated
        message (then pypsrp serializes it)."""
        if type(message) not in TEMPLATED:
            return None
        slots: list[Any] = []
        try:
            key = _shape(message, slots)
        except _Unknown:
            return None
        template = self._made.get(key)
        if template is None and key not in self._made:
            template = _build(message, slots)
            with self._lock:
                if len(self._made) >= _MAX_TEMPLATES:
                    self._made.clear()
                self._made[key] = template
        if template is None:
            return None
        return template.fill(serializer, slots)


TEMPLATES = Templates()
