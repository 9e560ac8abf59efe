"""A deterministic stand-in model, for unit tests and dry runs only.

Every text is a pure function of (expert id, request content, sampling seed): the same request
always gets the same answer, different experts answer differently, and different seeds mine
different instructions. Token counts are whitespace word counts.

Behaviour is chosen with the expert's `model` label: ``fake`` (defaults) or ``fake:FLAG`` with
flags joined by ``+`` (e.g. ``fake:prefer-longer+flaky``). Any other label acts like ``fake``.

Judge verdict flags (a chat request is a judge prompt when any message contains ``[[A]]``, or
``[[A>>B]]`` for Arena-Hard labels, answered as ``[[A>B]]``, ``[[B>A]]``, ``[[A=B]]``):
  prefer-first   always ``[[A]]`` (the default; mimics the position bias of small models)
  prefer-second  always ``[[B]]``
  prefer-longer  the longer of the two answers, ``[[C]]`` when equally long or when the answers
                 cannot be found; answers are read between MT-Bench style markers
                 ``[The Start of Assistant A's Answer]`` ... ``[The End of Assistant A's Answer]``
                 (``Assistant``, ``Answer`` or ``Response`` A/B)
  random         ``[[A]]``, ``[[B]]`` or ``[[C]]`` picked from a hash of the request
  tie            always ``[[C]]``
  garbage        a judgement with no ``[[...]]`` verdict in it

Failure injection:
  fail           every request comes back as a GenerationError
  flaky          about one request in four (chosen by a hash of the request) is a GenerationError
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections.abc import Sequence

from warriorcoder.backends.base import (
    BackendError,
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationOutcome,
    GenerationResult,
    ModelBackend,
)
from warriorcoder.backends.chat_templates import (
    BUILTIN_TEMPLATES,
    end_of_user_turn,
    load_template,
)
from warriorcoder.config import ExpertConfig, SamplingConfig

VERDICT_FLAGS = ("prefer-first", "prefer-second", "prefer-longer", "random", "tie", "garbage")
FAILURE_FLAGS = ("fail", "flaky")
KNOWN_FLAGS = VERDICT_FLAGS + FAILURE_FLAGS

_OPENERS = (
    "Write a Python function that",
    "Implement a Python function which",
    "Create a small Python program that",
    "I need a Python helper that",
    "Using only the Python standard library, write code that",
    "Can you write a function in Python that",
    "Develop a Python routine that",
    "Write an efficient Python function that",
    "Please implement, in Python, a function that",
    "Build a command-line friendly Python function that",
)
_TASKS = (
    "returns the k most frequent words in a paragraph",
    "checks whether a string of brackets is balanced",
    "merges overlapping intervals given as pairs of integers",
    "computes the longest common subsequence of two strings",
    "rotates a square matrix ninety degrees clockwise in place",
    "parses a CSV line that may contain quoted commas",
    "finds all prime numbers below a given limit with a sieve",
    "converts a Roman numeral into an integer",
    "flattens an arbitrarily nested list of lists",
    "detects a cycle in a directed graph stored as an adjacency dict",
    "groups anagrams from a list of lowercase words",
    "returns the median of a stream of numbers after each insertion",
    "validates an IPv4 address written in dotted decimal notation",
    "computes the edit distance between two words",
    "serialises a binary tree into a string and back",
    "finds the shortest path in a grid maze with walls",
    "counts the islands of ones in a two dimensional grid",
    "implements a least recently used cache with a fixed capacity",
    "splits a list into chunks of a given size",
    "reverses the order of words in a sentence while keeping punctuation",
    "computes running averages over a sliding window",
    "returns every permutation of a short string without duplicates",
    "encodes a string with run-length encoding and decodes it again",
    "schedules meetings into the fewest number of rooms",
    "finds the maximum sum of a contiguous subarray",
    "converts snake_case identifiers into camelCase",
    "evaluates an arithmetic expression with parentheses and the four operators",
    "deduplicates records in a list of dicts by a chosen key",
    "calculates the number of business days between two dates",
    "generates Pascal's triangle up to a given row",
    "returns the top three scores per player from a log of games",
    "checks whether two binary trees are mirror images",
    "normalises file paths that contain dots and double dots",
    "finds the first non repeating character in a string",
    "computes the greatest common divisor of a list of integers",
    "simulates a bank account with deposits, withdrawals and an overdraft limit",
    "renders a table of rows as aligned plain text columns",
    "returns the kth smallest element of an unsorted array",
    "tokenises a simple arithmetic expression into numbers and operators",
    "builds a word frequency histogram from a text file",
)
_DETAILS = (
    "The input can be empty, so handle that case explicitly.",
    "Include type hints and a short docstring.",
    "Aim for linear time if possible and explain the complexity.",
    "Raise a ValueError with a helpful message on invalid input.",
    "Add two or three doctest examples.",
    "Avoid recursion because inputs may be large.",
    "Do not use any third party packages.",
    "Make it easy to unit test.",
    "Keep memory usage constant apart from the output.",
    "Return the result instead of printing it.",
    "Explain your approach before the code.",
    "Write it so that it also works for very long inputs.",
)
_EXAMPLE_FORMS = (
    "For example, with the input {a} and {b} it should handle both correctly.",
    "Test it on inputs of size {a} and {b}.",
    "It will be called about {a} times per second, with sizes up to {b}.",
    "",
    "",
)
_SOLUTIONS = (
    ("ascending order", "def solve(values: list[int]) -> list[int]:\n    return sorted(values)"),
    (
        "a frequency count",
        ("from collections import Counter\n\n\n"
         "def solve(words: list[str]) -> dict[str, int]:\n    return dict(Counter(words))"),
    ),
    (
        "a single pass",
        ("def solve(values: list[int]) -> int:\n    best = current = 0\n"
         "    for value in values:\n        current = max(0, current + value)\n"
         "        best = max(best, current)\n    return best"),
    ),
    (
        "a stack",
        ("def solve(text: str) -> bool:\n    pairs = {')': '(', ']': '[', '}': '{'}\n"
         "    stack: list[str] = []\n    for ch in text:\n        if ch in '([{':\n"
         "            stack.append(ch)\n        elif ch in pairs:\n"
         "            if not stack or stack.pop() != pairs[ch]:\n                return False\n"
         "    return not stack"),
    ),
    (
        "a set",
        ("def solve(values: list[int]) -> list[int]:\n    seen: set[int] = set()\n"
         "    out = []\n    for value in values:\n        if value not in seen:\n"
         "            seen.add(value)\n            out.append(value)\n    return out"),
    ),
)
_EXPLANATIONS = (
    "This handles the empty input without special cases.",
    "The function is pure, so it is easy to test.",
    "Its running time is linear in the size of the input.",
    "It uses only the standard library.",
    "Edge cases such as duplicates are covered as well.",
    "You can call it directly or import it from another module.",
)
_JUDGE_MARKER = "[[A]]"
# A judge prompt that asks for Arena-Hard labels (judge.labels arena_hard): verdicts are given
# as the weak labels (the fake is never sure).
_LABELS_MARKER = "[[A>>B]]"
_LABEL_OF = {"A": "A>B", "B": "B>A", "C": "A=B"}
_ANSWER_RE = r"\[The Start of (?:Assistant|Answer|Response) {x}(?:'s Answer)?\](.*?)" \
    r"\[The End of (?:Assistant|Answer|Response) {x}(?:'s Answer)?\]"


def parse_fake_flags(label: str) -> tuple[str, ...]:
    """Flags of a fake model label (``fake:prefer-longer+flaky`` -> both); others have none."""
    if not label.startswith("fake:"):
        return ()
    flags = tuple(f for f in label[len("fake:") :].split("+") if f)
    unknown = [f for f in flags if f not in KNOWN_FLAGS]
    if unknown:
        raise BackendError(
            f"fake model label {label!r}: unknown flag(s) {unknown}; known: {list(KNOWN_FLAGS)}"
        )
    verdicts = [f for f in flags if f in VERDICT_FLAGS]
    if len(verdicts) > 1:
        raise BackendError(f"fake model label {label!r}: choose one verdict flag, got {verdicts}")
    return flags


def _rng(*parts: object) -> random.Random:
    # sha256, not hash(): Python's str hash is randomised per process.
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _words(text: str) -> int:
    return len(text.split())


def fake_instruction(rng: random.Random) -> str:
    """A plausible coding instruction built from the word lists (ends with a full stop)."""
    parts = [f"{rng.choice(_OPENERS)} {rng.choice(_TASKS)}."]
    parts += rng.sample(_DETAILS, k=rng.randint(1, 2))
    example = rng.choice(_EXAMPLE_FORMS).format(a=rng.randint(2, 999), b=rng.randint(1000, 99999))
    if example:
        parts.append(example)
    return " ".join(parts)


def _answer_text(rng: random.Random) -> str:
    approach, code = rng.choice(_SOLUTIONS)
    notes = " ".join(rng.sample(_EXPLANATIONS, k=rng.randint(1, 4)))
    return f"Here is a solution using {approach}.\n\n```python\n{code}\n```\n\n{notes}"


class FakeBackend(ModelBackend):
    """Deterministic fake model (see the module docstring for the `model` label flags)."""

    def __init__(self, expert: ExpertConfig) -> None:
        self.model_id = expert.id
        self.expert = expert
        self.flags = parse_fake_flags(expert.model)
        verdicts = [f for f in self.flags if f in VERDICT_FLAGS]
        self.verdict_mode = verdicts[0] if verdicts else "prefer-first"
        if expert.chat_template is not None:
            self._template, self._bos = load_template(expert.chat_template)
        else:
            self._template, self._bos = BUILTIN_TEMPLATES["chatml"], ""
        self.calls = 0  # number of requests served, for tests

    def chat_template(self) -> str:
        return self._template

    def bos_token(self) -> str:
        return self._bos

    def end_of_turn(self) -> tuple[str, ...]:
        return (end_of_user_turn(self._template, self._bos),)

    def _failure(self, content: str, seed: int) -> GenerationError | None:
        if "fail" in self.flags:
            return GenerationError(self.model_id, "injected failure (fake:fail)", attempts=1)
        if "flaky" in self.flags and _rng("flaky", self.model_id, content, seed).random() < 0.25:
            return GenerationError(self.model_id, "injected failure (fake:flaky)", attempts=1)
        return None

    def _result(
        self, prompt: str, text: str, sampling: SamplingConfig, t0: float
    ) -> GenerationOutcome:
        finish = "stop"
        if _words(text) > sampling.max_tokens:
            # Cut right after the max_tokens-th word so completion_tokens == max_tokens.
            ends = [m.end() for m in re.finditer(r"\S+", text)]
            text, finish = text[: ends[sampling.max_tokens - 1]], "length"
        return GenerationResult(
            model_id=self.model_id,
            text=text,
            prompt_tokens=_words(prompt),
            completion_tokens=_words(text),
            latency_s=time.perf_counter() - t0,
            finish_reason=finish,
        )

    def _verdict(self, content: str, rng: random.Random) -> str:
        mode = self.verdict_mode
        if mode == "garbage":
            return "Both answers have merits and flaws; it is hard to say which one is better."
        if mode == "prefer-second":
            letter = "B"
        elif mode == "tie":
            letter = "C"
        elif mode == "random":
            letter = rng.choice("ABC")
        elif mode == "prefer-longer":
            found = [re.search(_ANSWER_RE.format(x=x), content, re.DOTALL) for x in "AB"]
            if found[0] is None or found[1] is None:
                letter = "C"
            else:
                a, b = (len(m.group(1).strip()) for m in found if m is not None)
                letter = "A" if a > b else "B" if b > a else "C"
        else:
            letter = "A"
        reason = {"A": "Assistant A", "B": "Assistant B", "C": "Neither assistant"}[letter]
        verdict = _LABEL_OF[letter] if _LABELS_MARKER in content else letter
        return f"{reason} gives the more helpful and correct answer.\n\n[[{verdict}]]"

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        """One deterministic assistant turn per request (a verdict for judge prompts)."""
        out: list[GenerationOutcome] = []
        for req in requests:
            t0 = time.perf_counter()
            self.calls += 1
            content = "\n".join(f"{m.role}: {m.content}" for m in req.messages)
            seed = req.sampling.seed
            failure = self._failure(content, seed)
            if failure is not None:
                out.append(failure)
                continue
            rng = _rng("chat", self.model_id, content, seed)
            if any(_JUDGE_MARKER in m.content or _LABELS_MARKER in m.content
                   for m in req.messages):
                text = self._verdict(content, rng)
            else:
                text = _answer_text(rng)
            out.append(self._result(content, text, req.sampling, t0))
        await asyncio.sleep(0)  # behave like a real async backend: let other tasks run
        return out

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        """A coding instruction per request, as a model would write a user turn when mining; a
        judge prompt pre-filled with "[[" gets the rest of a verdict ("A]]")."""
        out: list[GenerationOutcome] = []
        for req in requests:
            t0 = time.perf_counter()
            self.calls += 1
            seed = req.sampling.seed
            failure = self._failure(req.prompt, seed)
            if failure is not None:
                out.append(failure)
                continue
            rng = _rng("complete", self.model_id, req.prompt, seed)
            if (_JUDGE_MARKER in req.prompt or _LABELS_MARKER in req.prompt) and (
                req.prompt.endswith("[[")
            ):
                verdict = self._verdict(req.prompt, rng)
                text = verdict.rsplit("[[", 1)[1] if "[[" in verdict else verdict
            else:
                text = fake_instruction(rng)
            out.append(self._result(req.prompt, text, req.sampling, t0))
        await asyncio.sleep(0)
        return out
