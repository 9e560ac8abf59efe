"""Deterministic ids: the same parts always give the same id.

Every record of the arena is keyed by a hash of what identifies it, so a redelivered event or a
resumed run writes the same document again instead of a new one.
"""

from __future__ import annotations

import hashlib

# NUL never appears in model ids, challenge ids or any other text part we hash; refusing it
# keeps ("a\0b", "c") and ("a", "b\0c") from colliding.
_SEPARATOR = "\x00"
ID_HEX_CHARS = 24


def stable_id(*parts: str) -> str:
    """Return the first 24 hex chars of sha256 over `parts` joined by NUL.

    Raises ValueError when no part is given or a part contains NUL, TypeError when a part is
    not a str (an int 1 and a str "1" must not silently give the same id).
    """
    if not parts:
        raise ValueError("stable_id needs at least one part")
    for index, part in enumerate(parts):
        if not isinstance(part, str):
            raise TypeError(f"stable_id part {index} must be str, got {type(part).__name__}")
        if _SEPARATOR in part:
            raise ValueError(f"stable_id part {index} contains a NUL character: {part!r}")
    digest = hashlib.sha256(_SEPARATOR.join(parts).encode("utf-8")).hexdigest()
    return digest[:ID_HEX_CHARS]
