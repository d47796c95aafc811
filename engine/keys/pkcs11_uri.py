"""PKCS#11 URIs (RFC 7512): ``pkcs11:token=bulk;object=old;id=%01?module-path=/usr/lib/x.so&pin-value=1234``.

Pure parsing, no PKCS#11 library needed. Path attributes select the token and object; query attributes say
how to reach it (module, PIN). The PIN never appears in ``str()`` or ``repr()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_to_bytes

from engine.errors import InvalidArgument

# RFC 7512 §2.3: path attributes (string-valued unless noted) and query attributes.
_PATH_ATTRS = {
    "token",
    "manufacturer",
    "serial",
    "model",
    "library-manufacturer",
    "library-description",
    "library-version",
    "object",
    "type",
    "id",
    "slot-manufacturer",
    "slot-description",
    "slot-id",
}
_QUERY_ATTRS = {"pin-source", "pin-value", "module-name", "module-path"}
_TYPES = {"public", "private", "cert", "secret-key", "data"}
#: Characters left unescaped when writing a URI (RFC 7512 §2.3 "pk11-pchar" minus the separators).
_SAFE = "-._~:[]@!$'()*+,="


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed RFC 7512 URI. ``id`` is raw bytes; ``vendor`` holds ``x-`` attributes."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None
    type: str | None = None
    id: bytes | None = None
    slot_id: int | None = None
    slot_description: str | None = None
    slot_manufacturer: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: str | None = None
    module_name: str | None = None
    module_path: str | None = None
    pin_source: str | None = None
    pin_value: str | None = field(default=None, repr=False)
    vendor: tuple[tuple[str, str], ...] = ()

    def pin(self) -> str | None:
        """The PIN from ``pin-value`` or ``pin-source`` (a ``file:`` URI or absolute path), or None."""
        if self.pin_value is not None:
            return self.pin_value
        if self.pin_source is None:
            return None
        src = self.pin_source
        if src.startswith("file:"):
            src = src[5:]
            if src.startswith("//"):  # file:///abs/path or file://localhost/abs/path
                host, _, rest = src[2:].partition("/")
                if host not in ("", "localhost"):
                    raise InvalidArgument(f"pin-source on another host is not supported: {self.pin_source}")
                src = "/" + rest
        if not os.path.isabs(src):
            raise InvalidArgument(f"pin-source must be a file: URI or an absolute path: {self.pin_source}")
        try:
            with open(src, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as exc:
            raise InvalidArgument(f"cannot read pin-source {src}: {exc.strerror}") from exc

    def __str__(self) -> str:
        """The URI with ``pin-value`` replaced by ``***``: safe to log."""
        return self.format(redact=True)

    def format(self, redact: bool = True) -> str:
        path, query = [], []
        for name in sorted(_PATH_ATTRS):
            value = getattr(self, name.replace("-", "_"))
            if value is None:
                continue
            raw = value if isinstance(value, bytes) else str(value).encode()
            path.append(f"{name}={quote(raw, safe=_SAFE.replace('=', ''))}")
        path += [f"{k}={quote(v, safe=_SAFE.replace('=', ''))}" for k, v in self.vendor]
        for name in sorted(_QUERY_ATTRS):
            value = getattr(self, name.replace("-", "_"))
            if value is not None:
                shown = "***" if redact and name == "pin-value" else quote(value, safe="/" + _SAFE)
                query.append(f"{name}={shown}")
        return "pkcs11:" + ";".join(path) + ("?" + "&".join(query) if query else "")


def parse_pkcs11_uri(text: str) -> Pkcs11Uri:
    """Parse an RFC 7512 URI; unknown standard attributes, duplicates and bad values are refused."""
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() != "pkcs11":
        raise InvalidArgument(f"not a pkcs11: URI: {_shorten(text)}")
    if "#" in rest:
        raise InvalidArgument("a pkcs11: URI has no fragment")
    path_part, _, query_part = rest.partition("?")
    values: dict[str, object] = {}
    vendor: list[tuple[str, str]] = []
    for part, allowed, sep_char in ((path_part, _PATH_ATTRS, ";"), (query_part, _QUERY_ATTRS, "&")):
        for item in filter(None, part.split(sep_char)):
            name, eq, raw = item.partition("=")
            name = name.lower()
            if not eq:
                raise InvalidArgument(f"pkcs11: URI attribute without '=': {name}")
            data = unquote_to_bytes(raw)
            if name.startswith("x-"):
                vendor.append((name, _text(name, data)))
                continue
            if name not in allowed:
                where = "path" if sep_char == ";" else "query"
                raise InvalidArgument(f"unknown pkcs11: URI {where} attribute {name!r}")
            if name in values:
                raise InvalidArgument(f"pkcs11: URI attribute {name!r} given twice")
            values[name] = data if name == "id" else _text(name, data)
    if "pin-value" in values and "pin-source" in values:
        raise InvalidArgument("pkcs11: URI has both pin-value and pin-source")
    if values.get("type") not in (None, *_TYPES):
        raise InvalidArgument(f"pkcs11: URI type must be one of {sorted(_TYPES)}")
    if "slot-id" in values:
        slot = str(values["slot-id"])
        if not slot.isdigit():
            raise InvalidArgument("pkcs11: URI slot-id must be a decimal number")
        values["slot-id"] = int(slot)
    kwargs = {k.replace("-", "_"): v for k, v in values.items()}
    return Pkcs11Uri(vendor=tuple(vendor), **kwargs)  # type: ignore[arg-type]


def _text(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"pkcs11: URI attribute {name!r} is not UTF-8") from None


def _shorten(text: str) -> str:
    return text if len(text) < 60 else text[:57] + "..."
