"""Benchmark: MinHash dedup of synthetic mined instructions with injected near-duplicates.

Generates ``--n`` instructions from templates with a seeded RNG; about ``--dup-rate`` of them are
near-duplicates of an earlier original (re-cased, extra whitespace, one word changed, a polite
prefix, a dropped word, punctuation changes). Prints wall time, peak RSS, number kept, recall on
the injected duplicates, originals dropped, and how many dropped pairs have an exact Jaccard
below the threshold (estimation false positives).

    .venv/bin/python bench/bench_minhash.py            # 100,000 instructions

With ``--store embedded`` or ``--store mongodb`` it measures the arena's index in the store
instead (``storage/dedup_index.py``): the corpus is split into ``--rounds`` rounds, and each
round is claimed against the index as the challenger does (batches of 1,000), on the embedded
SQLite store or on a MongoDB wire server (nx-27017) started on a free loopback port. It prints
the time per round, the documents written, and whether the index kept exactly what
``minhash_dedup`` keeps over the whole corpus.

    .venv/bin/python bench/bench_minhash.py --store mongodb --n 10000 --rounds 5
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


@contextmanager
def mongodb_server(data_dir: Path) -> Iterator[str]:
    """A MongoDB wire server (nx-27017) on a free loopback port, from an empty folder."""
    exe = shutil.which("nx-27017") or str(Path(sys.executable).parent / "nx-27017")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([exe, "--data-dir", str(data_dir), "-p", str(port), "--host",
                             "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("nx-27017 did not start")
            time.sleep(0.05)
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def bench_store(texts: list[str], args: argparse.Namespace) -> None:
    """Claim the corpus round by round into the store's index; print time per round."""
    from warriorcoder.stages.challenger import challenge_id_for
    from warriorcoder.storage.dedup_index import ENTRIES, DedupIndex, IndexedItem
    from warriorcoder.v1 import arena_pb2

    with tempfile.TemporaryDirectory() as tmp, open_store(args.store, Path(tmp)) as store:
        index = DedupIndex(store, threshold=args.threshold, num_perm=args.num_perm)
        per_round = -(-len(texts) // args.rounds)
        kept: list[int] = []
        total = 0.0
        for r in range(args.rounds):
            lo, hi = r * per_round, min((r + 1) * per_round, len(texts))
            round_id = f"round-{r + 1}"
            items = [IndexedItem(challenge_id_for(round_id, texts[i]), round_id, texts[i])
                     for i in range(lo, hi)]
            start = time.perf_counter()
            result = index.claim(items)
            wall = time.perf_counter() - start
            # As the challenger does (not timed): the kept ones are stored as challenges.
            store.save_challenges([arena_pb2.Challenge(
                challenge_id=items[i].challenge_id, round_id=round_id,
                instruction=items[i].instruction) for i in result.kept])
            store.save_round_info(round_id, arena="default")
            total += wall
            kept += [lo + i for i in result.kept]
            print(f"{round_id}: {hi - lo} texts claimed in {wall:.2f} s "
                  f"({(hi - lo) / wall:,.0f} texts/s), kept {len(result.kept)}, "
                  f"index holds {index.size()}")
        reference = minhash_dedup(texts, threshold=args.threshold, num_perm=args.num_perm).kept
        print(f"store: {args.store}  texts: {len(texts)}  rounds: {args.rounds}  "
              f"total: {total:.2f} s ({len(texts) / total:,.0f} texts/s)")
        print(f"documents: {store.count(ENTRIES)} entries ({index.bands} bands x {index.rows} "
              "rows, buckets kept in memory)")
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        print(f"kept exactly what minhash_dedup keeps over the whole corpus: "
              f"{kept == reference} ({len(kept)} vs {len(reference)})")


@contextmanager
def open_store(kind: str, tmp: Path) -> Iterator[Any]:
    """The embedded store in `tmp`, or a store on a MongoDB wire server started for it."""
    from warriorcoder.storage.store import ArenaStore

    if kind == "embedded":
        yield ArenaStore.open_embedded(tmp / "arena.db")
        return
    with mongodb_server(tmp / "mongo") as uri:
        yield ArenaStore.connect(uri, "bench")


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dup-rate", type=float, default=0.10)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--store", choices=["none", "embedded", "mongodb"], default="none",
                        help="measure the arena's index in this store instead of minhash_dedup")
    parser.add_argument("--rounds", type=int, default=5,
                        help="with --store: rounds the corpus is split into")
    args = parser.parse_args()

    texts, source_of = build_corpus(args.n, args.dup_rate, args.seed)
    if args.store != "none":
        bench_store(texts, args)
        return
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
