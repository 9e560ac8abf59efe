"""Nothing mined twice: the arena's MinHash index in the store, shared by later rounds and by
several challengers, and decided first-writer-wins under concurrency.

The pure decision (`first_wins`) without a store; the index on the embedded store (SQLite)
and on the MongoDB wire server (nx-27017) through pymongo, with real concurrent clients.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from warriorcoder.arena.dedup import (
    band_keys,
    first_wins,
    minhash_dedup,
    minhash_signatures,
    optimal_bands,
)
from warriorcoder.backends import load_backend
from warriorcoder.config import ArenaConfig, parse_config
from warriorcoder.stages.challenger import Challenger, challenge_id_for
from warriorcoder.stages.embedded import open_run, run_arena
from warriorcoder.storage.dedup_index import ENTRIES, DedupIndex, IndexedItem
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

ROSTER = [
    {"id": "alpha", "backend": "fake", "model": "fake:prefer-longer"},
    {"id": "beta", "backend": "fake", "model": "fake:prefer-first"},
    {"id": "gamma", "backend": "fake", "model": "fake:tie"},
]
# Distinct coding instructions (pairwise far apart) and, per base, near-duplicate rewrites.
BASES = [
    ("Write a Python function that merges two sorted lists of integers into one sorted list "
     "without using the built-in sort, and explain its running time."),
    ("Implement an LRU cache class in Python with get and put methods that both run in constant "
     "time, using a dictionary and a doubly linked list."),
    ("Given a string of brackets, write a function that returns whether every opening bracket "
     "is closed in the right order, using a stack."),
    ("Write a Go program that reads a CSV file of transactions and prints the total amount per "
     "customer, sorted by the total in descending order."),
    ("Create a Rust function that parses an IPv4 address from a string and returns an error "
     "value for every malformed input instead of panicking."),
    ("Write a SQL query that returns, for each department, the employee with the highest salary, "
     "breaking ties by the earliest hire date."),
]


def variants(text: str) -> list[str]:
    """Rewrites of `text` that stay near-duplicates (estimated Jaccard well above 0.5)."""
    return [
        text.upper(),
        "Please " + text[0].lower() + text[1:],
        text.replace(",", " ,") + " Thanks!",
        "  ".join(text.split()) + " Keep it short.",
    ]


def items(texts: list[str], round_id: str) -> list[IndexedItem]:
    return [IndexedItem(challenge_id_for(round_id, t), round_id, t) for t in texts]


def config(round_id: str, **challenger: Any) -> ArenaConfig:
    return parse_config({"round_id": round_id, "roster": ROSTER,
                         "challenger": {"per_setting": 0, **challenger},
                         "rating": {"bootstrap_rounds": 5}})


def challenger(cfg: ArenaConfig, store: ArenaStore) -> Challenger:
    return Challenger(cfg, {e.id: load_backend(e) for e in cfg.roster}, store)


def group_of(text: str) -> int:
    """Which base a text is (a variant of)."""
    for n, base in enumerate(BASES):
        if text == base or text in variants(base):
            return n
    raise AssertionError(f"not a test text: {text!r}")


# -- the decision, pure -------------------------------------------------------------------------


def decide(texts: list[str], ids: list[str], indexed: list[tuple[str, str]] = ()) -> Any:
    bands, rows = optimal_bands(0.5, 128)
    buckets: dict[tuple[int, int], list[str]] = {}
    signatures: dict[str, np.ndarray] = {}
    if indexed:
        sig = minhash_signatures([t for _, t in indexed])
        keys = band_keys(sig, bands, rows)
        for i, (text_id, _) in enumerate(indexed):
            signatures[text_id] = sig[i]
            for b in range(bands):
                buckets.setdefault((b, int(keys[i, b])), []).append(text_id)
    sig = minhash_signatures(texts)
    return first_wins(ids, sig, band_keys(sig, bands, rows), buckets, signatures, 0.5)


def test_first_wins_matches_minhash_dedup_on_a_batch() -> None:
    texts = [BASES[0], *variants(BASES[0]), BASES[1], variants(BASES[1])[2], BASES[2]]
    decision = decide(texts, [f"id{i}" for i in range(len(texts))])
    assert decision.kept == minhash_dedup(texts).kept == [0, 5, 7]
    assert decision.duplicate_of == {1: "id0", 2: "id0", 3: "id0", 4: "id0", 6: "id5"}
    assert decision.already_indexed == []


def test_indexed_texts_win_and_an_indexed_id_is_itself() -> None:
    indexed = [("old0", BASES[0]), ("old1", BASES[1])]
    texts = [variants(BASES[0])[1], BASES[1], BASES[3]]
    decision = decide(texts, ["new0", "old1", "new3"], indexed)
    # A near-duplicate of an indexed text is dropped; the indexed text itself (a rerun of the
    # same claim) is kept as already indexed; a new text is kept.
    assert decision.duplicate_of == {0: "old0"}
    assert decision.kept == [1, 2]
    assert decision.already_indexed == [1]


def test_an_id_given_twice_goes_the_way_of_its_first_occurrence() -> None:
    indexed = [("old0", BASES[0])]
    texts = [variants(BASES[0])[0], variants(BASES[0])[0], BASES[2], BASES[2]]
    decision = decide(texts, ["a", "a", "b", "b"], indexed)
    assert decision.kept == [2]
    assert decision.duplicate_of == {0: "old0", 1: "old0", 3: "b"}


def test_first_wins_rejects_mismatched_inputs() -> None:
    sig = minhash_signatures(["a b c"])
    with pytest.raises(ValueError, match="one of each per text"):
        first_wins(["x", "y"], sig, band_keys(sig, 25, 5), {}, {}, 0.5)
    with pytest.raises(ValueError, match="threshold"):
        first_wins(["x"], sig, band_keys(sig, 25, 5), {}, {}, 0.0)


# -- the index in the embedded store --------------------------------------------------------------


def test_claims_are_idempotent_and_checks_write_nothing(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    index = DedupIndex(store)
    first = items([BASES[0], variants(BASES[0])[0], BASES[1]], "r1")
    assert index.check(first).kept == [0, 2]
    assert index.size() == 0  # a check writes nothing
    claimed = index.claim(first)
    assert (claimed.kept, claimed.already_indexed) == ([0, 2], [])
    assert claimed.duplicate_of[1].challenge_id == first[0].challenge_id
    assert index.size() == 2
    # The same claim again (a rerun after a crash): the same texts are kept, as themselves.
    again = index.claim(first)
    assert (again.kept, again.already_indexed) == ([0, 2], [0, 2])
    assert index.size() == 2
    # A later round's near-duplicates are dropped, naming the round they duplicate.
    later = index.claim(items([variants(BASES[1])[3], BASES[2]], "r2"))
    assert later.kept == [1]
    assert later.duplicate_of[0].round_id == "r1"


def test_rounds_stored_before_the_index_are_added_on_first_use(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    # A round stored by a version without the index: challenges and a round record only.
    old = [arena_pb2.Challenge(challenge_id=challenge_id_for("r0", t), round_id="r0",
                               instruction=t) for t in BASES[:3]]
    store.save_challenges(old)
    store.save_round_info("r0", challenges_ready=True)
    # Another arena's round in the same store is not this arena's history.
    store.save_challenges([arena_pb2.Challenge(challenge_id=challenge_id_for("x1", BASES[3]),
                                               round_id="x1", instruction=BASES[3])])
    store.register_round("x1", "other")
    index = DedupIndex(store)
    result = index.check(items([variants(t)[1] for t in BASES[:4]], "r1"))
    assert result.kept == [3]
    assert {o.round_id for o in result.duplicate_of.values()} == {"r0"}
    assert index.size() == 3
    other = DedupIndex(store, scope="other")
    assert other.check(items([variants(BASES[3])[0]], "x2")).kept == []


def test_a_claim_whose_challenge_was_never_stored_expires(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    # A claim whose challenger died before storing the challenge blocks near-duplicates only
    # within the lease (its claimer may be about to store it).
    assert DedupIndex(store, lease_s=3600).claim(items([BASES[0]], "r1")).kept == [0]
    assert DedupIndex(store, lease_s=3600).check(items([variants(BASES[0])[0]], "r2")).kept == []
    assert DedupIndex(store, lease_s=0).check(items([variants(BASES[0])[0]], "r2")).kept == [0]
    # Once stored, it counts whatever the lease.
    store.save_challenges([arena_pb2.Challenge(challenge_id=challenge_id_for("r1", BASES[0]),
                                               round_id="r1", instruction=BASES[0])])
    assert DedupIndex(store, lease_s=0).check(items([variants(BASES[0])[0]], "r2")).kept == []


def test_a_second_round_does_not_mine_the_first_rounds_challenges_again(tmp_path: Path) -> None:
    """A round run embedded, then a second round's challenger on the same run folder's store:
    its models "mine" the first round's challenges again (given as user instructions, some
    rewritten) and mine new ones."""
    run_dir = tmp_path / "run"
    first = asyncio.run(run_arena(config("r1", per_setting=3), run_dir))
    cfg = config("r2", per_setting=3)
    store = open_run(cfg, run_dir)
    r1 = store.challenges("r1")
    assert first.challenges == len(r1) > 3
    again = [c.instruction.upper() for c in r1[:3]] + [c.instruction for c in r1[3:5]]
    cfg = config("r2", per_setting=3, user_instructions=again)
    r2 = asyncio.run(challenger(cfg, store).start_round())
    assert r2 and sorted(r2, key=lambda c: c.challenge_id) == store.challenges("r2")
    funnel = store.round_info("r2")["funnel"]
    assert funnel["rejected"]["duplicate of an earlier round"] >= len(again)
    assert not {" ".join(c.instruction.lower().split()) for c in r2} & {
        " ".join(t.lower().split()) for t in again}
    # No challenge of round 2 is a near-duplicate of one of round 1, or of another of round 2.
    texts = [c.instruction for c in r1] + [c.instruction for c in r2]
    assert minhash_dedup(texts).kept == list(range(len(texts)))


# -- several challengers on one MongoDB wire server -----------------------------------------------


@pytest.fixture
def database(mongo_uri: str) -> str:
    return f"dedup{uuid.uuid4().hex[:10]}"


def test_two_challengers_on_one_mongodb_share_the_index(mongo_uri: str, database: str) -> None:
    store_a = ArenaStore.connect(mongo_uri, database)
    store_b = ArenaStore.connect(mongo_uri, database)
    cfg_a = config("r1", user_instructions=BASES[:3])
    rewritten = [variants(t)[2] for t in BASES[:3]]
    cfg_b = config("r2", user_instructions=[*rewritten, BASES[3]])
    a, b = challenger(cfg_a, store_a), challenger(cfg_b, store_b)

    async def scenario() -> None:
        assert sorted(c.instruction for c in await a.start_round()) == sorted(BASES[:3])
        # The other challenger (its own client, a later round) sees the first one's challenges.
        assert [c.instruction for c in await b.start_round()] == [BASES[3]]
        funnel = store_b.round_info("r2")["funnel"]
        assert funnel["rejected"] == {"duplicate of an earlier round": 3}
        # Both challengers take submissions at the same time, each a different rewrite of the
        # same two new instructions: one of each pair is accepted, by whichever got there first.
        left = [variants(BASES[4])[0], variants(BASES[5])[1]]
        right = [variants(BASES[4])[1], variants(BASES[5])[3]]
        got = await asyncio.gather(a.submit(left), b.submit(right))
        accepted = [c for s in got for c in s.accepted]
        assert sorted(group_of(c.instruction) for c in accepted) == [4, 5]
        assert sum(s.rejected for s in got) == 2

    asyncio.run(scenario())
    assert DedupIndex(store_a).size() == 3 + 1 + 2


def test_concurrent_claims_keep_exactly_one_of_each_group(mongo_uri: str,
                                                          database: str) -> None:
    """Four clients claim at once, each its own rewrites of the same six instructions in its
    own order: every instruction is kept exactly once, whoever wins."""
    clients = 4
    barrier = threading.Barrier(clients)
    kept: list[list[IndexedItem]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def claim(n: int) -> None:
        try:
            index = DedupIndex(ArenaStore.connect(mongo_uri, database))
            texts = [variants(base)[n] for base in BASES]
            random.Random(n).shuffle(texts)
            mine = items(texts, f"r{n}")
            barrier.wait(timeout=30)
            result = index.claim(mine)
            kept[n] = [mine[i] for i in result.kept]
        except BaseException as error:  # noqa: BLE001 - reported by the test's own thread
            errors.append(error)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    groups = sorted(group_of(item.instruction) for mine in kept for item in mine)
    assert groups == list(range(len(BASES)))
    store = ArenaStore.connect(mongo_uri, database)
    assert sorted(d["challenge_id"] for d in store.db[ENTRIES].find({})) == sorted(
        item.challenge_id for mine in kept for item in mine)


def test_an_id_claimed_twice_in_one_call_is_kept_once_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from warriorcoder.storage import dedup_index

    monkeypatch.setattr(dedup_index, "CLAIM_CHUNK", 2)  # each chunk its own lock hold
    index = DedupIndex(ArenaStore.open_embedded(tmp_path / "arena.db"))
    claimed = items([BASES[0], BASES[1], BASES[0], BASES[2], variants(BASES[1])[0]], "r1")
    result = index.claim(claimed)
    assert (result.kept, result.already_indexed) == ([0, 1, 3], [])
    assert {i: o.challenge_id for i, o in result.duplicate_of.items()} == {
        2: claimed[0].challenge_id, 4: claimed[1].challenge_id}
    assert index.size() == 3
