"""RFC 9421 base layer: parse `Signature-Input` / `Signature`, derive components, build the base.

Derived components: `@method`, `@target-uri`, `@authority`, `@scheme`, `@request-target`,
`@path`, `@query`, `@query-param;name=`. Header fields are trimmed and multiple values joined
with ", ". Component parameters other than `name` on `@query-param` (`;sf`, `;key`, `;bs`,
`;req`, `;tr`) are refused as unsupported, as are `@status` and other response components.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import SignatureMalformed, SignaturePolicyError
from .sfv import (
    BareItem,
    InnerList,
    Item,
    SfvError,
    Token,
    parse_dictionary,
    parse_item,
    serialize_inner_list,
    serialize_item,
)
from .sigcore import HeaderInput, Headers

DERIVED = frozenset(
    {
        "@method",
        "@target-uri",
        "@authority",
        "@scheme",
        "@request-target",
        "@path",
        "@query",
        "@query-param",
    }
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_DEFAULT_PORTS = {"https": "443", "http": "80"}
_STRING_PARAMS = ("keyid", "alg", "nonce", "tag")
_INT_PARAMS = ("created", "expires")


@dataclass(frozen=True)
class Component:
    """One covered component: a lower-case name and its parameters (only `name` is supported)."""

    name: str
    params: Mapping[str, BareItem]

    @property
    def identifier(self) -> str:
        """The serialised component identifier, as it starts a signature base line."""
        return serialize_item(Item(self.name, dict(self.params)))


@dataclass(frozen=True)
class SignatureInput:
    """One member of `Signature-Input`: a label, covered components and signature parameters."""

    label: str
    components: tuple[Component, ...]
    params: Mapping[str, BareItem]

    @property
    def serialized(self) -> str:
        """The inner list as `@signature-params` and `Signature-Input` carry it."""
        items = [Item(c.name, dict(c.params)) for c in self.components]
        return serialize_inner_list(InnerList(items, dict(self.params)))

    def _int(self, name: str) -> int | None:
        value = self.params.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def _str(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if isinstance(value, str) else None

    @property
    def created(self) -> int | None:
        """The `created` parameter (epoch seconds)."""
        return self._int("created")

    @property
    def expires(self) -> int | None:
        """The `expires` parameter (epoch seconds)."""
        return self._int("expires")

    @property
    def keyid(self) -> str | None:
        """The `keyid` parameter."""
        return self._str("keyid")

    @property
    def alg(self) -> str | None:
        """The `alg` parameter."""
        return self._str("alg")

    @property
    def covered_names(self) -> tuple[str, ...]:
        """The covered component names, parameters left out."""
        return tuple(c.name for c in self.components)


@dataclass(frozen=True)
class MessageContext:
    """The parts of a request the derived components are taken from."""

    method: str
    scheme: str
    authority: str
    path: str
    query: str | None
    target_uri: str
    headers: Headers


def _component(item: Item) -> Component:
    if isinstance(item.value, Token) or not isinstance(item.value, str):
        raise SignatureMalformed("a covered component is not a string")
    name = item.value
    if not name or name != name.lower():
        raise SignatureMalformed(f"component name {name!r} must be lower case")
    if name.startswith("@") and name not in DERIVED:
        raise SignaturePolicyError(f"unsupported derived component {name}")
    allowed = {"name"} if name == "@query-param" else set()
    extra = set(item.params) - allowed
    if extra:
        raise SignaturePolicyError(f"unsupported component parameter(s) {sorted(extra)} on {name}")
    if name == "@query-param" and not isinstance(item.params.get("name"), str):
        raise SignatureMalformed("@query-param needs a name parameter")
    return Component(name, dict(item.params))


def _signature_input(label: str, inner: InnerList) -> SignatureInput:
    components = tuple(_component(item) for item in inner.items)
    if len({c.identifier for c in components}) != len(components):
        raise SignatureMalformed("a component is covered twice")
    for name in _STRING_PARAMS:
        if name in inner.params and not isinstance(inner.params[name], str):
            raise SignatureMalformed(f"signature parameter {name} must be a string")
    for name in _INT_PARAMS:
        value = inner.params.get(name)
        if name in inner.params and (not isinstance(value, int) or isinstance(value, bool)):
            raise SignatureMalformed(f"signature parameter {name} must be an integer")
    return SignatureInput(label, components, dict(inner.params))


def parse_signature_input(value: str) -> dict[str, SignatureInput]:
    """Parse a `Signature-Input` header (several lines joined with ", ") by label."""
    try:
        members = parse_dictionary(value)
    except SfvError as exc:
        raise SignatureMalformed(f"Signature-Input cannot be parsed: {exc}") from exc
    out = {}
    for label, member in members.items():
        if not isinstance(member, InnerList):
            raise SignatureMalformed(f"Signature-Input {label} is not an inner list")
        out[label] = _signature_input(label, member)
    return out


def parse_signature_field(value: str) -> dict[str, bytes]:
    """Parse a `Signature` header: label -> signature bytes."""
    try:
        members = parse_dictionary(value)
    except SfvError as exc:
        raise SignatureMalformed(f"Signature cannot be parsed: {exc}") from exc
    out = {}
    for label, member in members.items():
        if isinstance(member, InnerList) or not isinstance(member.value, bytes):
            raise SignatureMalformed(f"Signature {label} is not a byte sequence")
        out[label] = member.value
    return out


def _normalise_authority(authority: str, scheme: str) -> str:
    authority = authority.strip().lower()
    host, sep, port = authority.rpartition(":")
    if sep and "]" not in port and port == _DEFAULT_PORTS.get(scheme):
        return host
    return authority


def build_context(
    method: str,
    headers: HeaderInput | Headers,
    *,
    target_uri: str | None = None,
    path: str | None = None,
    authority: str | None = None,
    scheme: str = "https",
) -> MessageContext:
    """The request as the signature sees it.

    Give `target_uri` (the absolute URL, e.g. built from the configured base URL behind a proxy),
    or `path` (path and query as received) with `authority` (default: the Host header).
    """
    view = headers if isinstance(headers, Headers) else Headers(headers)
    if target_uri is not None:
        parts = urllib.parse.urlsplit(target_uri)
        scheme = parts.scheme.lower() or scheme
        authority = authority or parts.netloc
        raw_path, query = parts.path, (parts.query if "?" in target_uri else None)
    else:
        if path is None:
            raise ValueError("give target_uri, or path (with authority or a Host header)")
        raw_path, sep, query_text = path.partition("?")
        query = query_text if sep else None
        authority = authority or view.get("host")
        if not authority:
            raise SignatureMalformed("no authority: no Host header and none given")
    authority = _normalise_authority(authority or "", scheme.lower())
    raw_path = raw_path or "/"
    if target_uri is None:
        target_uri = f"{scheme.lower()}://{authority}{raw_path}" + (
            f"?{query}" if query is not None else ""
        )
    return MessageContext(method, scheme.lower(), authority, raw_path, query, target_uri, view)


def _query_params(query: str | None, name: str) -> list[str]:
    # RFC 9421 2.2.8: decode as application/x-www-form-urlencoded, then re-encode the names and
    # values so that the `name` parameter and the value are in one canonical percent-encoding.
    found = []
    for key, value in urllib.parse.parse_qsl(query or "", keep_blank_values=True):
        if urllib.parse.quote(key, safe="*-._") == name:
            found.append(urllib.parse.quote(value, safe="*-._"))
    return found


def component_values(component: Component, ctx: MessageContext) -> list[str]:
    """The value(s) of one component; a repeated @query-param gives one value per occurrence."""
    name = component.name
    if name == "@method":
        return [ctx.method]
    if name == "@target-uri":
        return [ctx.target_uri]
    if name == "@authority":
        return [ctx.authority]
    if name == "@scheme":
        return [ctx.scheme]
    if name == "@path":
        return [ctx.path]
    if name == "@query":
        return [f"?{ctx.query or ''}"]
    if name == "@request-target":
        return [ctx.path + (f"?{ctx.query}" if ctx.query is not None else "")]
    if name == "@query-param":
        param = component.params["name"]
        assert isinstance(param, str)
        values = _query_params(ctx.query, param)
        if not values:
            raise SignatureMalformed(f"covered query parameter {param!r} is absent")
        return values
    value = ctx.headers.get(name)
    if value is None:
        raise SignatureMalformed(f"covered header {name!r} is absent from the request")
    return [value]


def signature_base(sig_input: SignatureInput, ctx: MessageContext) -> str:
    """The exact text signed: one line per component, then `"@signature-params"`."""
    lines = []
    for component in sig_input.components:
        for value in component_values(component, ctx):
            if "\n" in value or "\r" in value:
                raise SignatureMalformed(f"component {component.name} holds a newline")
            lines.append(f"{component.identifier}: {value}")
    lines.append(f'"@signature-params": {sig_input.serialized}')
    return "\n".join(lines)


def make_signature_input(
    label: str, components: Sequence[str], params: Mapping[str, BareItem]
) -> SignatureInput:
    """A SignatureInput to sign; a component is a name (`@method`) or an identifier
    (`"@query-param";name="Pet"`)."""
    items = []
    for text in components:
        try:
            item = parse_item(text) if text.startswith('"') else Item(text)
        except SfvError as exc:
            raise ValueError(f"bad component identifier {text!r}") from exc
        items.append(item)
    return _signature_input(label, InnerList(items, dict(params)))
