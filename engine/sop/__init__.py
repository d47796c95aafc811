"""``pgpbulk sop``: a subset of the Stateless OpenPGP CLI over the in-process OpenPGP layer.

It is the interoperability harness of pgpbulk: the same test matrix drives it, ``sqop`` and ``gosop``.
"""

from engine.sop.cli import add_sop_parser, build_parser, main
from engine.sop.errors import SopError

__all__ = ["SopError", "add_sop_parser", "build_parser", "main"]
