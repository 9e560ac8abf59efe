"""Deterministic ids: the same parts always give the same id.

Every record of the arena is keyed by a hash of what identifies it, so a redelivered event or a
resumed run writes the same document again instead of a new one.
"""

from __future__ import annotations

import hashlib

from warriorcoder.v1 import arena_pb2
from warriorcoder.v1.arena_pb2 import Order

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


def battle_id(challenge_id: str, model_a: str, model_b: str) -> str:
    """Deterministic id of the battle of model_a against model_b on one challenge.

    Order matters: (a, b) and (b, a) are different battles.
    """
    for name, value in (("challenge_id", challenge_id), ("model_a", model_a), ("model_b", model_b)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"battle_id: {name} must be a non-empty str, got {value!r}")
    if model_a == model_b:
        raise ValueError(f"battle_id: model_a and model_b are both {model_a!r}")
    return stable_id("battle", challenge_id, model_a, model_b)


def judgment_id(battle_id: str, judge: str, order: Order) -> str:
    """Deterministic id of one judge's judgment of one order of one battle."""
    for name, value in (("battle_id", battle_id), ("judge", judge)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"judgment_id: {name} must be a non-empty str, got {value!r}")
    if order not in (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA):
        raise ValueError(f"judgment_id: order must be ORDER_AB or ORDER_BA, got {order!r}")
    return stable_id("judgment", battle_id, judge, arena_pb2.Order.Name(order))


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from the identity of a request, so reruns decode identically."""
    return int(stable_id(*(str(p) for p in parts))[:8], 16) & 0x7FFFFFFF
