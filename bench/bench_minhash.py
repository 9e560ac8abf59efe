"""Benchmark: MinHash dedup of synthetic mined instructions with injected near-duplicates.

Generates ``--n`` instructions from templates with a seeded RNG; about ``--dup-rate`` of them are
near-duplicates of an earlier original (re-cased, extra whitespace, one word changed, a polite
prefix, a dropped word, punctuation changes). Prints wall time, peak RSS, number kept, recall on
the injected duplicates, originals dropped, and how many dropped pairs have an exact Jaccard
below the threshold (estimation false positives).

    .venv/bin/python bench/bench_minhash.py            # 100,000 instructions
"""

from __future__ import annotations

import argparse
import random
import resource
import time

from warriorcoder.arena.dedup import jaccard, minhash_dedup

LANGS = ["Python", "Rust", "Go", "C++", "Java", "TypeScript", "Kotlin", "Haskell", "C#", "Ruby"]
VERBS = ["sorts", "filters", "merges", "reverses", "compresses", "validates", "parses",
         "groups", "deduplicates", "flattens", "rotates", "partitions", "encodes", "indexes"]
STRUCTS = ["list", "array", "linked list", "binary tree", "hash map", "matrix", "graph",
           "string", "heap", "trie", "queue", "interval set", "stream", "JSON document"]
ITEMS = ["integers", "floats", "timestamps", "user records", "words", "IP addresses", "intervals",
         "coordinates", "transactions", "log lines", "file paths", "bank accounts", "emails"]
_WORD_TEXT = ("cache memory budget latency thread lock async retry timeout unicode locale bytes "
         "buffer window sliding prefix suffix palindrome anagram prime factor modulo overflow "
         "checksum hash collision bucket queue priority dijkstra shortest path cycle topological "
         "order stable unstable inplace recursion iteration generator iterator lazy eager batch "
         "shard replica leader follower consensus quorum snapshot rollback commit transaction "
         "isolation deadlock mutex semaphore channel actor message broker partition offset "
         "consumer producer schema migration index query planner join aggregate window rank "
         "percentile median variance histogram bitmap bloom filter sketch sample reservoir "
         "shuffle permutation combination subset powerset matrix determinant inverse gradient "
         "tensor kernel convolution pooling stride padding dilation token parser lexer grammar "
         "ast visitor closure scope binding mutable immutable ownership borrow lifetime trait "
         "interface generic template macro reflection serialization protobuf yaml csv xml "
         "regex glob wildcard escape quote newline tab whitespace indentation format")
WORDS = _WORD_TEXT.split()
TEMPLATES = [
    "Write a {lang} function that {verb} a {struct} of {items} and handles {w1} {w2} and {w3}.",
    ("Implement in {lang} a routine which {verb} every {struct} of {items}; consider {w1}, {w2}, "
     "{w3} and {w4}."),
    "How can I build a {lang} class that {verb} a {struct} holding {items} with {w1} {w2} {w3}?",
    ("Given a {struct} of {items}, create a {lang} program that {verb} it using {w1} and {w2} "
     "while avoiding {w3} {w4}."),
    ("Explain with {lang} code how one {verb} a {struct} of {items}, focusing on {w1} {w2} {w3} "
     "{w4} {w5}."),
    ("Design a {lang} API that {verb} a large {struct} of {items}; it must support {w1}, {w2}, "
     "{w3} {w4}."),
]
PREFIXES = ["Please", "Can you", "Hey,", "Quick question:", "I need help:"]


def original(rng: random.Random) -> str:
    """One templated instruction with random slot fillers and random detail words."""
    template = rng.choice(TEMPLATES)
    words = rng.sample(WORDS, 5)
    text = template.format(
        lang=rng.choice(LANGS), verb=rng.choice(VERBS), struct=rng.choice(STRUCTS),
        items=rng.choice(ITEMS), w1=words[0], w2=words[1], w3=words[2], w4=words[3],
        w5=words[4],
    )
    # A random tail makes originals of one template differ beyond their slots.
    tail = " ".join(rng.sample(WORDS, rng.randint(4, 10)))
    return f"{text} Extra context: {tail}."


def near_duplicate(text: str, rng: random.Random) -> str:
    """A perturbed copy of ``text`` of the kinds that mining produces."""
    kind = rng.randrange(6)
    tokens = text.split()
    if kind == 0:  # re-cased
        return text.upper() if rng.random() < 0.5 else text.lower()
    if kind == 1:  # extra whitespace
        return "  ".join(tokens).replace(" of ", " of\n\t ")
    if kind == 2:  # one word changed
        i = rng.randrange(len(tokens))
        tokens[i] = rng.choice(WORDS)
        return " ".join(tokens)
    if kind == 3:  # polite prefix
        return f"{rng.choice(PREFIXES)} {text[0].lower()}{text[1:]}"
    if kind == 4:  # one word dropped
        del tokens[rng.randrange(len(tokens))]
        return " ".join(tokens)
    return text.replace(",", "").replace(".", " !").replace(";", " ;")  # punctuation


def build_corpus(n: int, dup_rate: float, seed: int) -> tuple[list[str], dict[int, int]]:
    """Texts and, for every injected near-duplicate, the index of its source original."""
    rng = random.Random(seed)
    texts: list[str] = []
    source_of: dict[int, int] = {}
    originals: list[int] = []
    for i in range(n):
        if originals and rng.random() < dup_rate:
            src = rng.choice(originals)
            texts.append(near_duplicate(texts[src], rng))
            source_of[i] = src
        else:
            texts.append(original(rng))
            originals.append(i)
    return texts, source_of


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dup-rate", type=float, default=0.10)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    texts, source_of = build_corpus(args.n, args.dup_rate, args.seed)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = minhash_dedup(texts, threshold=args.threshold, num_perm=args.num_perm)
    wall = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    dropped = result.duplicate_of
    caught = sum(1 for i in source_of if i in dropped)
    originals_dropped = [i for i in dropped if i not in source_of]
    below = sum(
        1 for i, j in dropped.items() if jaccard(texts[i], texts[j]) < args.threshold
    )
    print(f"texts: {len(texts)}  injected near-duplicates: {len(source_of)}")
    print(f"LSH layout: bands={result.bands} rows={result.rows} num_perm={args.num_perm} "
          f"threshold={args.threshold}")
    print(f"wall time: {wall:.2f} s  ({len(texts) / wall:,.0f} texts/s)")
    print(f"peak RSS: {peak_rss:.0f} MiB (after building the corpus: {rss_before:.0f} MiB)")
    print(f"kept: {len(result.kept)}  dropped: {len(dropped)}")
    print(f"recall on injected duplicates: {caught / max(len(source_of), 1):.4f} "
          f"({caught}/{len(source_of)})")
    print(f"originals dropped (similar to an earlier original): {len(originals_dropped)}")
    print(f"dropped pairs with exact Jaccard < threshold: {below}/{len(dropped)}")


if __name__ == "__main__":
    main()
