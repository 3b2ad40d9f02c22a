"""An HTTP answer's headers read without the email package, for the psrp transport's
connections; anything but the plainest header block is read by the standard library's parser.

`http.client` hands every answer's header block to `email.parser`, whose feed parser costs
~37 us for the five headers a WS-Man answer carries: 5 % of a compliance check's controller
CPU (seven answers per host). A block of `Name: value` lines in printable ASCII, each ended by
CRLF, no folded line, no `From ` line, is what that parser, under its compat32 policy, turns
into an `HTTPMessage` holding `(name, value)` with the value's leading blanks and the CRLF
cut off (`header_source_parse`); `parse_headers` makes that message itself, and gives any
other block to the email parser, as before. Tests hold the two messages equal, attribute by
attribute, on the lab's answers and on hostile blocks.

`LeanResponse` is `http.client.HTTPResponse` whose `begin` is the standard library's own
function (its code object, of this Python), with the one name `parse_headers` bound to the one
here; `read_plainly` has a urllib3 pool's plain-HTTP connections answer with it.
"""

from __future__ import annotations

import email.parser
import functools
import http.client
import re
import types
from typing import Any

from urllib3.connection import HTTPConnection

# one header line as the feed parser takes it whole: a name of the characters its header
# pattern allows (printable ASCII but ':'), a colon, a value of printable ASCII and tabs;
# "From " is its Unix-from line, and is left to it
_LINE = re.compile(r"(?!From )([\x21-\x39\x3b-\x7e]+):([\x20-\x7e\t]*)\r\n")


def parse_headers(fp: Any, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage
                  ) -> http.client.HTTPMessage:
    """`http.client.parse_headers`, the plainest header blocks read without the email
    parser (as it reads them)."""
    lines = _read_headers_of(fp)
    text = b"".join(lines).decode("iso-8859-1")
    message = _plain(lines, _class)
    if message is None:
        return email.parser.Parser(_class=_class).parsestr(text)
    return message


def _read_headers_of(fp: Any) -> list[bytes]:
    """The header lines, read by `http.client` (its limits, its errors), the blank one last."""
    return http.client._read_headers(fp)   # type: ignore[attr-defined,no-any-return]


def _plain(lines: list[bytes], kind: type[http.client.HTTPMessage]
           ) -> http.client.HTTPMessage | None:
    """The message the email parser makes of these header lines, or None where they are not
    of the plainest kind."""
    if lines[-1] != b"\r\n":
        return None
    headers = []
    for line in lines[:-1]:
        found = _LINE.fullmatch(line.decode("iso-8859-1"))
        if found is None:
            return None
        headers.append((found.group(1), found.group(2).lstrip(" \t")))
    content_types = [value for name, value in headers if name.lower() == "content-type"]
    if len(content_types) > 1:
        return None
    message = kind()
    message._headers = headers   # type: ignore[attr-defined]
    message.set_payload("")      # what the parser leaves after the blank line
    if message.get_content_maintype() == "multipart":
        # the parser also looks for the parts in the (empty) body: what it finds there
        # depends on the one Content-Type alone
        found_parts = _empty_multipart(content_types[0])
        if found_parts is None:
            return None
        message.epilogue, defects = found_parts
        message.defects = [defect() for defect in defects]
    return message


@functools.lru_cache(maxsize=16)
def _empty_multipart(content_type: str) -> tuple[str | None, tuple[type, ...]] | None:
    """What the email parser makes of a multipart message of this type with no body: its
    epilogue and the types of its defects (made anew for each message: they hold nothing
    else), or None if it makes more of it."""
    message = email.parser.Parser().parsestr(f"Content-Type: {content_type}\r\n\r\n")
    if (message.get_payload() != "" or message.preamble is not None
            or any(vars(defect) != {"line": None} or defect.args
                   for defect in message.defects)):
        return None
    return message.epilogue, tuple(type(defect) for defect in message.defects)


class LeanResponse(http.client.HTTPResponse):
    """`HTTPResponse`, its headers read by `parse_headers` here."""

    begin = types.FunctionType(http.client.HTTPResponse.begin.__code__,
                               {**vars(http.client), "parse_headers": parse_headers},
                               "begin", http.client.HTTPResponse.begin.__defaults__,
                               http.client.HTTPResponse.begin.__closure__)


def read_plainly(pool: Any) -> None:
    """Have the plain-HTTP connections `pool` makes from now on answer with `LeanResponse`
    (once per pool; whatever makes its connections, such as the transport's exchange watch,
    still does)."""
    if getattr(pool, "_lean_answers", False):
        return
    make = pool.ConnectionCls

    def connection(*args: Any, **kwargs: Any) -> Any:
        made = make(*args, **kwargs)
        if type(made) is HTTPConnection:
            made.response_class = LeanResponse
        return made

    pool.ConnectionCls = connection
    pool._lean_answers = True
