"""Structured Field Values (RFC 8941), the subset HTTP message signatures and Content-Digest use.

Parses dictionaries whose members are items or inner lists with parameters; bare items are
integers, decimals, strings, tokens, byte sequences and booleans. Serialises the same. Errors
raise `SfvError` (a ValueError) for the caller to turn into its own exception.
"""

from __future__ import annotations

import base64
import binascii
import string
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeAlias


class SfvError(ValueError):
    """A structured field cannot be parsed or serialised."""


class Token(str):
    """An sf-token, kept apart from an sf-string because they serialise differently."""

    __slots__ = ()


BareItem: TypeAlias = int | Decimal | str | Token | bytes | bool
Params: TypeAlias = dict[str, BareItem]


@dataclass(frozen=True)
class Item:
    """One bare item with its parameters."""

    value: BareItem
    params: Params = field(default_factory=dict)


@dataclass(frozen=True)
class InnerList:
    """A parenthesised list of items, with parameters of its own."""

    items: list[Item]
    params: Params = field(default_factory=dict)


Member: TypeAlias = Item | InnerList

_KEY_FIRST = frozenset(string.ascii_lowercase + "*")
_KEY_CHARS = frozenset(string.ascii_lowercase + string.digits + "_-.*")
_TOKEN_FIRST = frozenset(string.ascii_letters + "*")
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~:/")
_B64_CHARS = frozenset(string.ascii_letters + string.digits + "+/=")


class _Parser:
    def __init__(self, text: str) -> None:
        if not text.isascii():
            raise SfvError("structured field is not ASCII")
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def key(self) -> str:
        if self.peek() not in _KEY_FIRST or not self.peek():
            raise SfvError(f"invalid key at offset {self.pos}")
        start = self.pos
        while self.peek() and self.peek() in _KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def params(self) -> Params:
        params: Params = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip_sp()
            name = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            if name in params:
                # RFC 8941 lets the last one win; for signatures a repeated parameter is a trick.
                raise SfvError(f"duplicate parameter {name!r}")
            params[name] = value
        return params

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == '"':
            return self.sf_string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char == "-" or (char.isdigit() and char):
            return self.number()
        if char and char in _TOKEN_FIRST:
            return self.token()
        raise SfvError(f"unexpected character {char!r} at offset {self.pos}")

    def sf_string(self) -> str:
        self.pos += 1
        out: list[str] = []
        while not self.done():
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                if self.done() or self.text[self.pos] not in '"\\':
                    raise SfvError("invalid escape in string")
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise SfvError("control character in string")
            else:
                out.append(char)
        raise SfvError("unterminated string")

    def token(self) -> Token:
        start = self.pos
        self.pos += 1
        while self.peek() and self.peek() in _TOKEN_CHARS:
            self.pos += 1
        return Token(self.text[start : self.pos])

    def byte_sequence(self) -> bytes:
        end = self.text.find(":", self.pos + 1)
        if end < 0:
            raise SfvError("unterminated byte sequence")
        encoded = self.text[self.pos + 1 : end]
        self.pos = end + 1
        if not set(encoded) <= _B64_CHARS:
            raise SfvError("invalid base64 in byte sequence")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise SfvError(f"invalid base64 in byte sequence: {exc}") from exc

    def boolean(self) -> bool:
        value = self.text[self.pos + 1 : self.pos + 2]
        if value not in ("0", "1"):
            raise SfvError("invalid boolean")
        self.pos += 2
        return value == "1"

    def number(self) -> int | Decimal:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        while self.peek() and (self.peek().isdigit() or self.peek() == "."):
            self.pos += 1
        text = self.text[start : self.pos]
        digits = text.lstrip("-")
        if not digits or not digits[0].isdigit():
            raise SfvError("invalid number")
        if "." in digits:
            whole, _, frac = digits.partition(".")
            if "." in frac or not frac or len(whole) > 12 or len(frac) > 3:
                raise SfvError("invalid decimal")
            return Decimal(text)
        if len(digits) > 15:
            raise SfvError("integer out of range")
        return int(text)

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.params())

    def inner_list(self) -> InnerList:
        self.pos += 1  # the "("
        items: list[Item] = []
        while not self.done():
            self.skip_sp()
            if self.peek() == ")":
                self.pos += 1
                return InnerList(items, self.params())
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise SfvError("inner list items must be separated by a space")
        raise SfvError("unterminated inner list")

    def member(self) -> Member:
        return self.inner_list() if self.peek() == "(" else self.item()


def parse_dictionary(text: str) -> dict[str, Member]:
    """Parse an sf-dictionary; duplicate keys are refused rather than overwritten."""
    parser = _Parser(text)
    parser.skip_sp()
    out: dict[str, Member] = {}
    while not parser.done():
        name = parser.key()
        if parser.peek() == "=":
            parser.pos += 1
            value: Member = parser.member()
        else:
            value = Item(True, parser.params())
        if name in out:
            raise SfvError(f"duplicate dictionary key {name!r}")
        out[name] = value
        parser.skip_ows()
        if parser.done():
            return out
        if parser.peek() != ",":
            raise SfvError(f"expected ',' at offset {parser.pos}")
        parser.pos += 1
        parser.skip_ows()
        if parser.done():
            raise SfvError("trailing comma in dictionary")
    return out


def parse_item(text: str) -> Item:
    """Parse one sf-item (with parameters), refusing anything after it."""
    parser = _Parser(text)
    parser.skip_sp()
    item = parser.item()
    parser.skip_sp()
    if not parser.done():
        raise SfvError("trailing characters after item")
    return item


def serialize_bare_item(value: BareItem) -> str:
    """The canonical text of one bare item."""
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value.quantize(Decimal("0.001")).normalize(), "f")
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    if isinstance(value, Token):
        return str(value)
    if not all(" " <= char <= "~" for char in value):
        raise SfvError("string holds a character sf-string cannot carry")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialize_params(params: Params) -> str:
    """The canonical text of a parameter list (`;a=1;b`)."""
    out = []
    for name, value in params.items():
        if value is True:
            out.append(f";{name}")
        else:
            out.append(f";{name}={serialize_bare_item(value)}")
    return "".join(out)


def serialize_item(item: Item) -> str:
    """The canonical text of an item with its parameters."""
    return serialize_bare_item(item.value) + serialize_params(item.params)


def serialize_inner_list(inner: InnerList) -> str:
    """The canonical text of an inner list with its parameters."""
    body = " ".join(serialize_item(item) for item in inner.items)
    return f"({body}){serialize_params(inner.params)}"


def serialize_dictionary(members: dict[str, Member]) -> str:
    """The canonical text of a dictionary."""
    out = []
    for name, value in members.items():
        if isinstance(value, InnerList):
            out.append(f"{name}={serialize_inner_list(value)}")
        elif value.value is True:
            out.append(name + serialize_params(value.params))
        else:
            out.append(f"{name}={serialize_item(value)}")
    return ", ".join(out)
