"""Pure parts of challenge mining: cleaning mined text and pairing attackers with defenders."""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

# Markers that show the model ran past the user turn into another role or a template token.
_RUN_ON_MARKERS = re.compile(
    r"(<\|[^|>]{1,40}\|>|</s>|<s>|\[/?INST\]|<start_of_turn>|<end_of_turn>"
    r"|^\s*(?:assistant|system)\s*:?\s*$|^#{2,}\s*(?:Response|Answer|Assistant)\b)",
    re.IGNORECASE | re.MULTILINE,
)
# Labels some models put in front of the request they write.
_LEADING_LABEL = re.compile(
    r"^\s*(?:user|human|instruction|question|request|task)\s*:\s*", re.IGNORECASE
)


@dataclass(frozen=True)
class CleanResult:
    text: str | None
    # Why the text was rejected (None when kept).
    reason: str | None = None


def clean_instruction(
    raw: str,
    *,
    stop_strings: Sequence[str] = (),
    min_chars: int = 20,
    max_chars: int = 4000,
    truncated: bool = False,
) -> CleanResult:
    """Turn one raw pre-query completion into a challenge text, or say why it is rejected.

    The text is cut at the first end-of-turn string of the template or any other role or special
    token (the model went on to answer itself), leading labels like "User:" are removed, and the
    result must be within [min_chars, max_chars], have at least three words and be mostly text.
    A completion cut off by the token limit (`truncated`) is rejected: its request is incomplete.
    """
    if truncated:
        return CleanResult(None, "cut off at the token limit")
    text = raw
    for stop in stop_strings:
        if stop and stop.strip() and stop in text:
            text = text.split(stop, 1)[0]
    m = _RUN_ON_MARKERS.search(text)
    if m:
        text = text[: m.start()]
    text = _LEADING_LABEL.sub("", text.strip()).strip()
    if len(text) < min_chars:
        return CleanResult(None, f"shorter than {min_chars} characters")
    if len(text) > max_chars:
        return CleanResult(None, f"longer than {max_chars} characters")
    if len(text.split()) < 3:
        return CleanResult(None, "fewer than 3 words")
    letters = sum(ch.isalpha() for ch in text)
    if letters < 0.5 * len(text.replace(" ", "")):
        return CleanResult(None, "mostly non-letters")
    return CleanResult(text)


def pair_defenders(
    attacker: str,
    roster: Sequence[str],
    defenders: str | int,
    rng: random.Random,
    newcomers: Collection[str] = (),
) -> list[str]:
    """The defenders of one challenge: every other expert ("all") or `defenders` of them sampled.

    `newcomers` are experts the arena's earlier rounds never rated (say a model made by
    `warriorcoder train`). With sampled defenders, a challenge of an established attacker is
    defended by newcomers first, so every newcomer battles the pool and gets placed on the
    season's scale; the rest are sampled as before. Without newcomers the draw is unchanged.
    """
    others = [m for m in roster if m != attacker]
    if defenders == "all":
        return others
    if not isinstance(defenders, int) or not 1 <= defenders <= len(others):
        raise ValueError(f"defenders must be 'all' or 1..{len(others)}, got {defenders!r}")
    fresh = [m for m in others if m in newcomers] if attacker not in newcomers else []
    if not fresh:
        return sorted(rng.sample(others, defenders), key=others.index)
    chosen = rng.sample(fresh, min(defenders, len(fresh)))
    chosen += rng.sample([m for m in others if m not in chosen], defenders - len(chosen))
    return sorted(chosen, key=others.index)


def judges_for(model_a: str, model_b: str, roster: Sequence[str]) -> list[str]:
    """Uninvolved judges of a battle: the roster minus both competitors."""
    judges = [m for m in roster if m not in (model_a, model_b)]
    if not judges:
        raise ValueError(f"no uninvolved judge for {model_a} vs {model_b}: roster needs 3+ experts")
    return judges
