"""Benchmark: verdict parsing speed on typical judge answers and on degenerate long ones.

Judges write untrusted text; a small model stuck in a loop can write thousands of verdict
mentions up to judge.max_tokens. The parser's clause and sentence look-backs are bounded so
that its cost stays linear in the text. Prints a markdown table: characters, mentions and the
median time of `read_verdict` over `--repeat` runs for each case.

    .venv/bin/python bench/bench_verdicts.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from warriorcoder.arena.judging import JUDGE_SYSTEM_PROMPT, read_verdict

TYPICAL = (
    "Assistant A's function reverses the string with slicing and handles the empty string. "
    "Assistant B's loop skips the last character, so it fails on 'ab'. Although [[B]] explains "
    "its approach more, correctness comes first.\n\nMy final verdict is [[A>>B]]."
)


def cases() -> list[tuple[str, str]]:
    """(name, text) of each benchmarked answer."""
    return [
        ("typical explain answer", TYPICAL),
        ("system prompt echoed, then a verdict", JUDGE_SYSTEM_PROMPT + "\n\n" + TYPICAL),
        ("degenerate: '[[A]] ' x 5,000", "[[A]] " * 5000),
        ("degenerate: 'If [[A]], ' x 5,000", "If [[A]], " * 5000),
        ("degenerate: 'Final verdict: [[A]] ' x 3,000", "Final verdict: [[A]] " * 3000),
        ("degenerate: 'The answer A is better. ' x 3,000", "The answer A is better. " * 3000),
        ("degenerate: option list lines x 2,000", "[[A]]\n[[B]]\n[[C]]\n" * 2000),
        ("50,000 characters of prose, no verdict", "The code loops over the list. " * 1700),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| answer | characters | `[[` | read_verdict, median |")
    print("|---|---|---|---|")
    for name, text in cases():
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            read_verdict(text)
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        shown = f"{median * 1e3:.2f} ms" if median < 1 else f"{median:.2f} s"
        print(f"| {name} | {len(text):,} | {text.count('[['):,} | {shown} |")


if __name__ == "__main__":
    main()
