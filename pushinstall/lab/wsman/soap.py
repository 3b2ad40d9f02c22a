"""SOAP envelopes of the lab's WS-Management endpoint: read a request, write a response or fault.

Only what pypsrp 0.9 and pywinrm 0.5 send and read (MS-WSMV): the header fields Action,
MessageID, OperationTimeout, ResourceURI and the ShellId selector; responses echo the request's
MessageID in RelatesTo, which both clients check.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmanfault": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "pwsh": "http://schemas.microsoft.com/powershell",
}
SHELL_URI = NS["rsp"]
CMD_RESOURCE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
PSRP_RESOURCE_PREFIX = "http://schemas.microsoft.com/powershell/"
DONE = f"{SHELL_URI}/CommandState/Done"
RUNNING = f"{SHELL_URI}/CommandState/Running"

# WS-Man fault codes Windows answers (MS-WSMV 2.2.4.41 and winerror.h)
OPERATION_TIMEOUT = 2150858793  # a Receive with nothing to say: the client polls again
SHELL_NOT_FOUND = 2150858843    # the shell is gone (the host restarted, the shell was deleted)
UNENCRYPTED_REFUSED = 2150858774  # "unencrypted traffic is currently disabled"
ACCESS_DENIED = 5
LIFT = 64 * 1024      # element texts longer than this are not read by expat (`_parsed`)
_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)


@dataclass
class SoapRequest:
    """The parts of a WS-Man request the lab acts on."""

    action: str
    message_id: str
    resource_uri: str
    shell_id: str | None
    operation_timeout: float
    body: ET.Element

    @property
    def verb(self) -> str:
        """The action's last path element: Create, Command, Send, Receive, Signal, Delete."""
        return self.action.rsplit("/", 1)[-1]


def _duration(text: str | None, default: float) -> float:
    """`PT20S` / `PT20.000S` -> 20.0 (the xs:duration forms the clients send)."""
    match = re.fullmatch(r"PT(\d+(?:\.\d+)?)S", (text or "").strip())
    return float(match.group(1)) if match else default


def _parsed(data: bytes) -> ET.Element:
    """`ET.fromstring(data)`, the same tree, with every element text of more than `LIFT`
    bytes of the base64 alphabet lifted out before parsing and put back after it (a Send's
    stream of ~500 KB). Such a text is exactly the string expat would make of it (ASCII, no
    markup, entity, CR or control character), and expat cost ~4 ms per Send reading it,
    most of the lab's work for a pushed block."""
    lifted: dict[str, str] = {}    # token -> the text it stands for
    pieces: list[bytes] = []
    at = done = 0
    while (start := data.find(b"<", at)) >= 0 and (close := data.find(b">", start)) >= 0:
        if data[start + 1:start + 2] == b"!":    # a comment, CDATA or DOCTYPE: as it is
            return ET.fromstring(data)
        end = data.find(b"<", close)
        at = close + 1 if end < 0 else end
        if (end - close <= LIFT or not data.startswith(b"</", end)
                or data[close - 1:close] == b"/" or data[start + 1:start + 2] in b"/?"):
            continue
        text = data[close + 1:end]
        if text.translate(None, _BASE64):
            continue
        token = f"{{lifted:{len(lifted)}}}"
        lifted[token] = text.decode("ascii")
        pieces += [data[done:close + 1], token.encode("ascii")]
        done = end
    small = b"".join([*pieces, data[done:]])
    # a token the document held itself would be ambiguous (lifted texts hold no "{")
    if not lifted or any(small.count(token.encode("ascii")) != 1 for token in lifted):
        return ET.fromstring(data)
    root = ET.fromstring(small)
    for element in root.iter():
        if element.text is not None and element.text in lifted:
            element.text = lifted.pop(element.text)
    return root


def parse_request(data: bytes, default_timeout: float = 20.0) -> SoapRequest:
    """Read a request envelope; ValueError when it is not one."""
    try:
        root = _parsed(data)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    header = root.find("s:Header", NS)
    body = root.find("s:Body", NS)
    if header is None or body is None:
        raise ValueError("not a SOAP envelope")

    def text(path: str) -> str:
        node = header.find(path, NS)
        return (node.text or "").strip() if node is not None else ""

    shell_id = None
    for selector in header.findall("wsman:SelectorSet/wsman:Selector", NS):
        if selector.get("Name") == "ShellId":
            shell_id = (selector.text or "").strip()
    return SoapRequest(
        action=text("wsa:Action"),
        message_id=text("wsa:MessageID"),
        resource_uri=text("wsman:ResourceURI"),
        shell_id=shell_id,
        operation_timeout=_duration(text("wsman:OperationTimeout"), default_timeout),
        body=body,
    )


def envelope(request: SoapRequest, action: str, body_child: ET.Element | None) -> bytes:
    """A response envelope for `request` (RelatesTo = its MessageID) holding `body_child`."""
    root = ET.Element(f"{{{NS['s']}}}Envelope")
    header = ET.SubElement(root, f"{{{NS['s']}}}Header")
    ET.SubElement(header, f"{{{NS['wsa']}}}Action").text = action
    ET.SubElement(header, f"{{{NS['wsa']}}}MessageID").text = f"uuid:{str(uuid.uuid4()).upper()}"
    ET.SubElement(header, f"{{{NS['wsa']}}}RelatesTo").text = request.message_id
    ET.SubElement(header, f"{{{NS['wsa']}}}To").text = (
        "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous")
    body = ET.SubElement(root, f"{{{NS['s']}}}Body")
    if body_child is not None:
        body.append(body_child)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


def response_action(request: SoapRequest) -> str:
    """`.../Receive` -> `.../ReceiveResponse`."""
    return f"{request.action}Response"


def fault(request: SoapRequest | None, code: int, message: str, machine: str = "lab",
          subcode: str | None = None) -> bytes:
    """A WS-Man fault envelope (sent with HTTP 500) the clients parse into `code`; `subcode`
    (a DSP0226 fault subcode such as `w:AccessDenied`, which Windows sends as the sender's
    fault) else TimedOut or InternalError (the receiver's)."""
    s, wsa = NS["s"], NS["wsa"]
    root = ET.Element(f"{{{s}}}Envelope")
    header = ET.SubElement(root, f"{{{s}}}Header")
    ET.SubElement(header, f"{{{wsa}}}Action").text = (
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault")
    ET.SubElement(header, f"{{{wsa}}}MessageID").text = f"uuid:{str(uuid.uuid4()).upper()}"
    if request is not None:
        ET.SubElement(header, f"{{{wsa}}}RelatesTo").text = request.message_id
    body = ET.SubElement(root, f"{{{s}}}Body")
    node = ET.SubElement(body, f"{{{s}}}Fault")
    code_node = ET.SubElement(node, f"{{{s}}}Code")
    ET.SubElement(code_node, f"{{{s}}}Value").text = "s:Sender" if subcode else "s:Receiver"
    sub = ET.SubElement(code_node, f"{{{s}}}Subcode")
    ET.SubElement(sub, f"{{{s}}}Value").text = subcode or (
        "w:TimedOut" if code == OPERATION_TIMEOUT else "w:InternalError")
    reason = ET.SubElement(node, f"{{{s}}}Reason")
    ET.SubElement(reason, f"{{{s}}}Text", {"xml:lang": "en-US"}).text = message
    detail = ET.SubElement(node, f"{{{s}}}Detail")
    wsman_fault = ET.SubElement(detail, f"{{{NS['wsmanfault']}}}WSManFault",
                                {"Code": str(code), "Machine": machine})
    ET.SubElement(wsman_fault, f"{{{NS['wsmanfault']}}}Message").text = message
    return ET.tostring(root, encoding="utf-8")


def access_denied(request: SoapRequest) -> bytes:
    """What Windows answers a Create of a shell (or a Command) the user may not have: the
    sender's fault with subcode `wsman:AccessDenied` (DMTF DSP0226's fault table; the same
    Code/Subcode pair as Microsoft's MS-WSTIM 3.1.4.2.1, "wsman:AccessDenied",
    learn.microsoft.com/openspecs/windows_protocols/ms-wstim/47c39a56-d7eb-481c-80c7-ae9ec9272764)
    whose WSManFault detail carries the Win32 error 5, "Access is denied." (the text `winrs`
    and PowerShell print for it)."""
    return fault(request, ACCESS_DENIED, "Access is denied. ", subcode="w:AccessDenied")


def rsp(tag: str, attrib: dict[str, str] | None = None) -> ET.Element:
    """A new element in the shell namespace."""
    return ET.Element(f"{{{SHELL_URI}}}{tag}", attrib or {})


def sub(parent: ET.Element, tag: str, text: str | None = None,
        attrib: dict[str, str] | None = None) -> ET.Element:
    """A child element in the shell namespace."""
    node = ET.SubElement(parent, f"{{{SHELL_URI}}}{tag}", attrib or {})
    if text is not None:
        node.text = text
    return node


def shell_created(request: SoapRequest, shell_id: str, resource_uri: str) -> bytes:
    """The Create response: the shell and its ShellId selector (what both clients read)."""
    wsa, wsman, wst = NS["wsa"], NS["wsman"], NS["wst"]
    created = ET.Element(f"{{{wst}}}ResourceCreated")
    ET.SubElement(created, f"{{{wsa}}}Address").text = "http://127.0.0.1/wsman"
    params = ET.SubElement(created, f"{{{wsa}}}ReferenceParameters")
    ET.SubElement(params, f"{{{wsman}}}ResourceURI").text = resource_uri
    selectors = ET.SubElement(params, f"{{{wsman}}}SelectorSet")
    ET.SubElement(selectors, f"{{{wsman}}}Selector", {"Name": "ShellId"}).text = shell_id
    shell = rsp("Shell")
    sub(shell, "ShellId", shell_id)
    sub(shell, "ResourceUri", resource_uri)
    sub(shell, "Owner", "lab")
    sub(shell, "InputStreams", "stdin pr")
    sub(shell, "OutputStreams", "stdout")
    root = ET.fromstring(envelope(request, response_action(request), created))
    body = root.find("s:Body", NS)
    assert body is not None
    body.append(shell)
    return ET.tostring(root, encoding="utf-8")
