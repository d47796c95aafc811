"""OpenPGP ASCII armor (RFC 9580 §6): whole-buffer and streaming, on the native or pure kernels.

Writing follows gpg: 64-column base64 lines, ``\\n`` line ends, a ``=XXXX`` CRC-24 line unless the
content is v6-only (RFC 9580 §6.1: then the CRC must be left out). Reading is lenient as §6 asks: any
whitespace (CR included) is ignored, the CRC may be missing, and a wrong or malformed CRC is only an
:class:`ArmorWarning` unless ``strict=True``. Text before, between and after blocks is ignored.

Headers read from armor are a ``dict``; a key that appears more than once (``Comment:``) keeps every
value, joined by ``\\n`` in order (values cannot contain newlines, so nothing is lost):
:meth:`Armored.header_items` gives the pairs back.

The package mirrors the data flow: :mod:`.format` (kinds, head and tail lines, shared constants),
:mod:`.encode` (whole-buffer :func:`armor` and streaming :class:`ArmorWriter`), :mod:`.lines` (reading
BEGIN, header, CRC and END lines), :mod:`.decode` (whole-buffer :func:`dearmor`, :func:`iter_dearmor`)
and :mod:`.reader` (streaming :class:`ArmorReader`).
"""

from engine.armor.decode import dearmor, iter_dearmor
from engine.armor.encode import ArmorWriter, armor, crc_wanted
from engine.armor.format import KINDS, Armored, ArmorWarning
from engine.armor.reader import ArmorReader

__all__ = [
    "KINDS",
    "ArmorReader",
    "ArmorWarning",
    "ArmorWriter",
    "Armored",
    "armor",
    "crc_wanted",
    "dearmor",
    "iter_dearmor",
]
