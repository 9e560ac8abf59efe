"""The arena's MinHash LSH index, kept in the store: every challenge of every round, so that
nothing is mined (or submitted) twice across rounds and challenger replicas.

Layout (one index per arena scope and dedup layout; changing ``challenger.dedup`` starts a new
index, filled again from the stored challenges):

- ``dedup_entries``: one document per indexed challenge, ``_id = "<index>/<challenge_id>"``,
  with its round and its MinHash signature. An entry is the commit record of a claim: it is
  written after the challenge's bucket documents.
- ``dedup_buckets``: one document per (band, key, challenge), ``_id =
  "<index>/<band>/<key>/<challenge_id>"`` and the field ``bucket`` (indexed) naming the bucket.
  Deterministic ids and upserts: writing a claim twice (a rerun, a resume) changes nothing.
- ``dedup_rounds``: which rounds' stored challenges the index holds (rounds stored before the
  index existed are added on first use).
- ``dedup_locks``: on a MongoDB server, a lease lock per index. Deciding and writing a batch is
  one critical section, so two replicas that insert near-duplicates at the same moment cannot
  both keep them: the first to take the lock wins and the other sees its entries. The lock is
  taken by inserting a document with a deterministic id (insert-if-absent); one left by a
  process that died is taken over once its lease has expired. The embedded store has one
  writer (its run) and takes no lock.

A claim decides in input order (:func:`warriorcoder.arena.dedup.first_wins`): a text is kept
unless an indexed challenge, or an earlier text of the batch, is a near-duplicate. A challenge
already in the index is itself, not its own duplicate, so a claim repeated after a crash keeps
the same texts. An entry whose challenge was never stored (its challenger died between the claim
and the store) stops counting once the lease has passed, and is then claimed again by whoever
brings that text.
"""

from __future__ import annotations

import base64
import logging
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from warriorcoder.arena.dedup import band_keys, first_wins, minhash_signatures, optimal_bands
from warriorcoder.config import DEFAULT_ARENA
from warriorcoder.storage.store import ArenaStore

log = logging.getLogger(__name__)

ENTRIES = "dedup_entries"
BUCKETS = "dedup_buckets"
ROUNDS = "dedup_rounds"
LOCKS = "dedup_locks"
# Texts decided per lock hold: bounds how long other replicas wait for the lock.
CLAIM_CHUNK = 1000
# Bucket names per `$in` query.
_IN_CHUNK = 1000
DEFAULT_LEASE_S = 30.0
# Seed of the permutations and band keys: the same as minhash_dedup's default, so that a
# round's own dedup and the index agree.
_SEED = 1


class DedupLockTimeout(TimeoutError):
    """The index lock stayed held by another challenger for longer than the wait allowed."""


@dataclass(frozen=True)
class IndexedItem:
    """A challenge to check or claim: its id, its round and its instruction."""

    challenge_id: str
    round_id: str
    instruction: str


@dataclass(frozen=True)
class Owner:
    """An indexed challenge that a dropped text duplicates."""

    challenge_id: str
    round_id: str


@dataclass
class ClaimResult:
    """Which items were kept (indices into the items, in order, the already indexed ones
    included), which of those the index already held, and what each dropped one duplicates."""

    kept: list[int] = field(default_factory=list)
    already_indexed: list[int] = field(default_factory=list)
    duplicate_of: dict[int, Owner] = field(default_factory=dict)


def _encode(signature: np.ndarray) -> str:
    return base64.b64encode(signature.astype("<u4").tobytes()).decode("ascii")


def _decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<u4").astype(np.uint32)


class DedupIndex:
    """The store's MinHash LSH index for one arena scope and dedup layout (see the module
    docstring). Blocking: call from a worker thread (``ArenaStore.call``) in async code."""

    def __init__(
        self,
        store: ArenaStore,
        *,
        threshold: float = 0.5,
        num_perm: int = 128,
        shingle_size: int = 3,
        scope: str = DEFAULT_ARENA,
        lease_s: float = DEFAULT_LEASE_S,
        lock_wait_s: float = 300.0,
    ) -> None:
        self.store = store
        self.db = store.db
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.scope = scope
        self.bands, self.rows = optimal_bands(float(threshold), num_perm)
        self.name = (f"{scope}/t{threshold:g}-p{num_perm}-s{shingle_size}"
                     f"-b{self.bands}r{self.rows}")
        self.lease_s = lease_s
        self.lock_wait_s = lock_wait_s
        self.db[BUCKETS].create_index("bucket")
        self.db[ENTRIES].create_index("index")

    # -- public ---------------------------------------------------------------------------
    def check(self, items: Sequence[IndexedItem]) -> ClaimResult:
        """Which items the index would keep now, writing nothing (a pre-filter: a claim later
        decides again against what other challengers claimed meanwhile)."""
        self._backfill()
        return self._decide(items, write=False)

    def claim(self, items: Sequence[IndexedItem]) -> ClaimResult:
        """Decide and add the kept items to the index, atomically against other challengers
        (a batch at a time); raises DedupLockTimeout when the lock cannot be had."""
        self._backfill()
        result = ClaimResult()
        for start in range(0, len(items), CLAIM_CHUNK):
            chunk = items[start : start + CLAIM_CHUNK]
            with self._locked():
                part = self._decide(chunk, write=True)
            result.kept += [start + i for i in part.kept]
            result.already_indexed += [start + i for i in part.already_indexed]
            result.duplicate_of.update({start + i: o for i, o in part.duplicate_of.items()})
        return result

    def size(self) -> int:
        """How many challenges the index holds."""
        return int(self.db[ENTRIES].count_documents({"index": self.name}))

    # -- deciding -------------------------------------------------------------------------
    def _bucket(self, band: int, key: int) -> str:
        return f"{self.name}/{band:02d}/{key:016x}"

    def _decide(self, items: Sequence[IndexedItem], *, write: bool) -> ClaimResult:
        if not items:
            return ClaimResult()
        sig = minhash_signatures([it.instruction for it in items], self.num_perm,
                                 self.shingle_size, _SEED)
        keys = band_keys(sig, self.bands, self.rows, _SEED)
        names = {self._bucket(b, int(keys[i, b])): (b, int(keys[i, b]))
                 for i in range(len(items)) for b in range(self.bands)}
        buckets: dict[tuple[int, int], list[str]] = {}
        members: set[str] = set()
        bucket_list = list(names)
        for start in range(0, len(bucket_list), _IN_CHUNK):
            query = {"bucket": {"$in": bucket_list[start : start + _IN_CHUNK]}}
            for doc in self.db[BUCKETS].find(query, {"bucket": 1, "challenge_id": 1}):
                buckets.setdefault(names[doc["bucket"]], []).append(str(doc["challenge_id"]))
                members.add(str(doc["challenge_id"]))
        for listed in buckets.values():
            listed.sort()
        entries = self._entries(members, own={it.challenge_id for it in items})
        signatures = {cid: _decode(doc["signature"]) for cid, doc in entries.items()}
        decision = first_wins([it.challenge_id for it in items], sig, keys, buckets, signatures,
                              self.threshold)
        rounds = {cid: str(doc.get("round_id", "")) for cid, doc in entries.items()}
        rounds.update({it.challenge_id: it.round_id for it in items})
        result = ClaimResult(
            kept=decision.kept, already_indexed=decision.already_indexed,
            duplicate_of={i: Owner(cid, rounds.get(cid, ""))
                          for i, cid in decision.duplicate_of.items()},
        )
        if write:
            new = sorted(set(decision.kept) - set(decision.already_indexed))
            self._write([items[i] for i in new], sig[new], keys[new])
        return result

    def _entries(self, members: set[str], own: set[str]) -> dict[str, dict[str, Any]]:
        """The complete entries among bucket `members` that still count: an entry whose
        challenge was never stored counts only within the lease after its claim (its claimer
        may be about to store it), unless it is one of the texts now decided (`own`)."""
        ids = sorted(members)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            query = {"_id": {"$in": [f"{self.name}/{c}" for c in ids[start : start + _IN_CHUNK]]}}
            for doc in self.db[ENTRIES].find(query):
                found[str(doc["challenge_id"])] = doc
        stale_before = time.time() - self.lease_s
        old = [c for c, doc in found.items()
               if c not in own and float(doc.get("claimed_at", 0.0)) < stale_before]
        stored: set[str] = set()
        for start in range(0, len(old), _IN_CHUNK):
            query = {"_id": {"$in": old[start : start + _IN_CHUNK]}}
            stored |= {str(d["_id"]) for d in self.db["challenges"].find(query, {"_id": 1})}
        for c in old:
            if c not in stored:
                log.info("dedup index: challenge %s was claimed but never stored; it no longer "
                         "counts", c)
                del found[c]
        return found

    def _write(self, items: Sequence[IndexedItem], sig: np.ndarray, keys: np.ndarray) -> None:
        """Buckets first, entries last: an entry marks a complete claim."""
        if not items:
            return
        replace = self.store._replace_one  # the driver's own request class
        bucket_ops = []
        for i, item in enumerate(items):
            for band in range(self.bands):
                bucket = self._bucket(band, int(keys[i, band]))
                doc_id = f"{bucket}/{item.challenge_id}"
                bucket_ops.append(replace(
                    {"_id": doc_id},
                    {"_id": doc_id, "bucket": bucket, "challenge_id": item.challenge_id},
                    upsert=True))
        self.db[BUCKETS].bulk_write(bucket_ops, ordered=False)
        now = time.time()
        entry_ops = [replace(
            {"_id": f"{self.name}/{item.challenge_id}"},
            {"_id": f"{self.name}/{item.challenge_id}", "index": self.name,
             "challenge_id": item.challenge_id, "round_id": item.round_id,
             "signature": _encode(sig[i]), "claimed_at": now},
            upsert=True) for i, item in enumerate(items)]
        self.db[ENTRIES].bulk_write(entry_ops, ordered=False)

    # -- rounds stored before the index ---------------------------------------------------
    def _backfill(self) -> None:
        """Add the stored challenges of every round the index does not cover yet."""
        # A round records its arena (Challenger.start_round); rounds from before arenas
        # existed belong to the default one.
        rounds = sorted(str(d["_id"]) for d in self.db["rounds"].find({}, {"_id": 1, "arena": 1})
                        if d.get("arena", DEFAULT_ARENA) == self.scope)
        done = {str(d["round_id"]) for d in self.db[ROUNDS].find({"index": self.name})}
        missing = [r for r in rounds if r not in done]
        if not missing:
            return
        with self._locked():
            done = {str(d["round_id"]) for d in self.db[ROUNDS].find({"index": self.name})}
            for round_id in missing:
                if round_id in done:
                    continue
                stored = self.store.challenges(round_id)
                items = [IndexedItem(c.challenge_id, round_id, c.instruction) for c in stored]
                for start in range(0, len(items), CLAIM_CHUNK):
                    self._decide(items[start : start + CLAIM_CHUNK], write=True)
                self.db[ROUNDS].replace_one(
                    {"_id": f"{self.name}/{round_id}"},
                    {"_id": f"{self.name}/{round_id}", "index": self.name, "round_id": round_id},
                    upsert=True)
                if items:
                    log.info("dedup index %s: added the %d stored challenges of round %s",
                             self.name, len(items), round_id)

    # -- the lock ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.store.shared:
            yield  # one writer: the embedded run
            return
        holder = self._acquire()
        try:
            yield
        finally:
            self.db[LOCKS].delete_one({"_id": self.name, "holder": holder})

    def _acquire(self) -> str:
        from pymongo.errors import DuplicateKeyError

        locks = self.db[LOCKS]
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            now = time.time()
            try:
                locks.insert_one({"_id": self.name, "holder": holder,
                                  "expires_at": now + self.lease_s})
                return holder
            except DuplicateKeyError:
                pass
            doc = locks.find_one({"_id": self.name})
            if doc is not None and float(doc["expires_at"]) < now:
                # Its holder died (or stalled past the lease): take it over, unless another
                # challenger got there first (the update then matches nothing).
                taken = locks.update_one(
                    {"_id": self.name, "holder": doc["holder"],
                     "expires_at": doc["expires_at"]},
                    {"$set": {"holder": holder, "expires_at": now + self.lease_s}})
                if taken.modified_count == 1:
                    log.warning("dedup index %s: took over a lock whose lease had expired",
                                self.name)
                    return holder
            if time.monotonic() > deadline:
                raise DedupLockTimeout(
                    f"dedup index {self.name}: lock held by another challenger for over "
                    f"{self.lock_wait_s:g}s")
            time.sleep(0.02 + random.random() * 0.03)
