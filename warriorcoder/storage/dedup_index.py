"""The arena's MinHash LSH index, kept in the store: every challenge of every round, so that
nothing is mined (or submitted) twice across rounds and challenger replicas.

Layout (one index per arena scope and dedup layout; changing ``challenger.dedup`` starts a new
index, filled again from the stored challenges):

- ``dedup_entries``: one document per indexed challenge, ``_id = "<index>/<challenge_id>"``
  (deterministic: writing a claim twice changes nothing), with its round, its MinHash
  signature and ``seq``, its position in the order of claims.
- ``dedup_rounds``: which rounds' stored challenges the index holds (rounds stored before the
  index existed are added on first use).
- ``dedup_locks``: on a MongoDB server, a lease lock per index. Deciding and writing a batch is
  one critical section, so two replicas that insert near-duplicates at the same moment cannot
  both keep them: the first to take the lock wins and the other sees its entries. The lock is
  taken by inserting a document with a deterministic id (insert-if-absent); one left by a
  process that died is taken over once its lease has expired. The embedded store has one
  writer (its run) and takes no lock.

Each process keeps the index in memory: the LSH buckets (band keys computed from the stored
signatures, 8 bytes per band and challenge) and the signatures (4 bytes per permutation and
challenge: about 0.7 KB per challenge in all at 25 bands and 128 permutations). It reads only
the entries claimed since it last looked (``seq`` above the last one it saw), so a claim writes
one document per kept challenge and reads what was claimed meanwhile, not the arena's history.

The lease (``lease_s``, 30 s) bounds a critical section: a holder that stalls longer than that
(a claim of one chunk normally takes about a second) can lose the lock to another challenger
while it still writes, and the two may then both keep a near-duplicate pair.

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

import numpy as np

from warriorcoder.arena.dedup import band_keys, first_wins, minhash_signatures, optimal_bands
from warriorcoder.config import DEFAULT_ARENA
from warriorcoder.storage.store import ArenaStore

log = logging.getLogger(__name__)

ENTRIES = "dedup_entries"
ROUNDS = "dedup_rounds"
LOCKS = "dedup_locks"
# Texts decided per lock hold: bounds how long other replicas wait for the lock.
CLAIM_CHUNK = 1000
# Ids per `$in` query.
_IN_CHUNK = 1000
# Bucket entries added since the sorted arrays were last rebuilt, before they are merged in.
_MERGE_AT = 1 << 17
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


class _Buckets:
    """The indexed challenges in memory: their LSH buckets (a sorted array of bucket ids, band
    and key mixed into one 64-bit id, with the member of each, plus a dict of recent additions)
    and, per challenge, its signature (512 bytes at 128 permutations), round and claim time."""

    def __init__(self, bands: int) -> None:
        self.salts = (np.arange(bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
                      + np.uint64(1))
        self.ids: list[str] = []
        self.sorted = np.zeros(0, dtype=np.uint64)
        self.owner = np.zeros(0, dtype=np.int64)
        self.recent: dict[int, list[int]] = {}
        self.number: dict[str, int] = {}
        self.signature_blocks: list[np.ndarray] = []
        self.block_of: list[tuple[int, int]] = []
        self.round_of: list[str] = []
        self.claimed_at: list[float] = []

    def signature(self, text_id: str) -> np.ndarray:
        block, row = self.block_of[self.number[text_id]]
        sig: np.ndarray = self.signature_blocks[block][row]
        return sig

    def entry(self, text_id: str) -> tuple[str, float]:
        """(round, claim time) of an indexed challenge."""
        n = self.number[text_id]
        return self.round_of[n], self.claimed_at[n]

    def bucket_ids(self, keys: np.ndarray) -> np.ndarray:
        """One id per (text, band): the band's key mixed with the band (shape of `keys`)."""
        return keys ^ self.salts[None, :]

    def add(self, ids: Sequence[str], sig: np.ndarray, keys: np.ndarray,
            rounds: Sequence[str], claimed_at: Sequence[float]) -> None:
        buckets = self.bucket_ids(keys)
        block = len(self.signature_blocks)
        self.signature_blocks.append(sig)
        for i, text_id in enumerate(ids):
            n = len(self.ids)
            self.ids.append(text_id)
            self.number[text_id] = n
            self.block_of.append((block, i))
            self.round_of.append(rounds[i])
            self.claimed_at.append(claimed_at[i])
            for b in buckets[i].tolist():
                self.recent.setdefault(b, []).append(n)
        if len(self.recent) > _MERGE_AT:
            self._merge()

    def _merge(self) -> None:
        extra_keys = np.fromiter((b for b, ns in self.recent.items() for _ in ns),
                                 dtype=np.uint64)
        extra_owner = np.fromiter((n for ns in self.recent.values() for n in ns), dtype=np.int64)
        keys = np.concatenate((self.sorted, extra_keys))
        owner = np.concatenate((self.owner, extra_owner))
        order = np.argsort(keys, kind="stable")
        self.sorted, self.owner = keys[order], owner[order]
        self.recent = {}

    def members(self, keys: np.ndarray) -> list[list[str]]:
        """For each text (a row of band keys), the ids sharing one of its buckets."""
        buckets = self.bucket_ids(keys)
        lo = np.searchsorted(self.sorted, buckets, side="left")
        hi = np.searchsorted(self.sorted, buckets, side="right")
        out: list[list[str]] = []
        for i in range(buckets.shape[0]):
            found: set[int] = set()
            for b, a, z in zip(buckets[i].tolist(), lo[i].tolist(), hi[i].tolist(), strict=True):
                if z > a:
                    found.update(self.owner[a:z].tolist())
                found.update(self.recent.get(b, ()))
            out.append([self.ids[n] for n in sorted(found)])
        return out


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
        self._memory = _Buckets(self.bands)
        self._stored: set[str] = set()
        self._seq = -1  # the highest seq read from the store

    # -- public ---------------------------------------------------------------------------
    def check(self, items: Sequence[IndexedItem]) -> ClaimResult:
        """Which items the index would keep now, writing nothing (a pre-filter: a claim later
        decides again against what other challengers claimed meanwhile)."""
        self._backfill()
        self._sync()
        return self._decide(items, write=False, own={it.challenge_id for it in items})

    def claim(self, items: Sequence[IndexedItem]) -> ClaimResult:
        """Decide and add the kept items to the index, atomically against other challengers
        (a batch at a time); raises DedupLockTimeout when the lock cannot be had."""
        self._backfill()
        result = ClaimResult()
        # An id given twice goes the way of its first occurrence (a later chunk would find
        # the first one indexed and take it for itself).
        first: dict[str, int] = {}
        for i, it in enumerate(items):
            first.setdefault(it.challenge_id, i)
        unique = [i for i, it in enumerate(items) if first[it.challenge_id] == i]
        # The batch's own entries count whatever their age: the batch is stored after it.
        own = set(first)
        for start in range(0, len(unique), CLAIM_CHUNK):
            positions = unique[start : start + CLAIM_CHUNK]
            with self._locked():
                self._sync()
                part = self._decide([items[i] for i in positions], write=True, own=own)
            result.kept += [positions[i] for i in part.kept]
            result.already_indexed += [positions[i] for i in part.already_indexed]
            result.duplicate_of.update({positions[i]: o for i, o in part.duplicate_of.items()})
        for i, it in enumerate(items):
            j = first[it.challenge_id]
            if j != i:
                result.duplicate_of[i] = result.duplicate_of.get(
                    j, Owner(it.challenge_id, it.round_id))
        result.kept.sort()
        result.already_indexed.sort()
        return result

    def size(self) -> int:
        """How many challenges the index holds."""
        return int(self.db[ENTRIES].count_documents({"index": self.name}))

    # -- deciding -------------------------------------------------------------------------
    def _sync(self) -> None:
        """Read the entries claimed since this process last looked into memory."""
        query = {"index": self.name, "seq": {"$gt": self._seq}}
        fields = {"challenge_id": 1, "signature": 1, "seq": 1, "round_id": 1, "claimed_at": 1}
        docs = list(self.db[ENTRIES].find(query, fields))
        if not docs:
            return
        self._seq = max(self._seq, max(int(d["seq"]) for d in docs))
        docs = [d for d in docs if str(d["challenge_id"]) not in self._memory.number]
        if not docs:
            return
        docs.sort(key=lambda d: int(d["seq"]))
        sig = np.stack([_decode(d["signature"]) for d in docs])
        self._memory.add([str(d["challenge_id"]) for d in docs], sig,
                         band_keys(sig, self.bands, self.rows, _SEED),
                         [str(d.get("round_id", "")) for d in docs],
                         [float(d.get("claimed_at", 0.0)) for d in docs])

    def _decide(self, items: Sequence[IndexedItem], *, write: bool,
                own: set[str]) -> ClaimResult:
        if not items:
            return ClaimResult()
        sig = minhash_signatures([it.instruction for it in items], self.num_perm,
                                 self.shingle_size, _SEED)
        keys = band_keys(sig, self.bands, self.rows, _SEED)
        members = {m for row in self._memory.members(keys) for m in row}
        counted = self._counted(members, own=own)
        signatures = {cid: self._memory.signature(cid) for cid in counted}
        # Buckets of the members that still count, in the form first_wins reads.
        buckets: dict[tuple[int, int], list[str]] = {}
        if signatures:
            ids = sorted(signatures)
            member_keys = band_keys(np.stack([signatures[c] for c in ids]), self.bands,
                                    self.rows, _SEED)
            for n, cid in enumerate(ids):
                for band in range(self.bands):
                    buckets.setdefault((band, int(member_keys[n, band])), []).append(cid)
        decision = first_wins([it.challenge_id for it in items], sig, keys, buckets, signatures,
                              self.threshold)
        rounds = {cid: self._memory.entry(cid)[0] for cid in counted}
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

    def _counted(self, members: set[str], own: set[str]) -> list[str]:
        """The indexed challenges among `members` that still count: one whose challenge was
        never stored counts only within the lease after its claim (its claimer may be about to
        store it), unless it is one of the texts now decided (`own`)."""
        stale_before = time.time() - self.lease_s
        old = sorted(c for c in members if c not in own and c not in self._stored
                     and self._memory.entry(c)[1] < stale_before)
        for start in range(0, len(old), _IN_CHUNK):
            query = {"_id": {"$in": old[start : start + _IN_CHUNK]}}
            # Once stored, a challenge stays stored: confirmed ones are never asked again.
            self._stored |= {str(d["_id"]) for d in self.db["challenges"].find(query, {"_id": 1})}
        void = {c for c in old if c not in self._stored}
        for c in sorted(void):
            log.info("dedup index: challenge %s was claimed but never stored; it no longer "
                     "counts", c)
        return sorted(members - void)

    def _write(self, items: Sequence[IndexedItem], sig: np.ndarray, keys: np.ndarray) -> None:
        """One entry per kept challenge, numbered after every entry this process has read
        (under the lock that is every entry of the index)."""
        if not items:
            return
        replace = self.store._replace_one  # the driver's own request class
        now = time.time()
        first = self._seq + 1
        ops = [replace(
            {"_id": f"{self.name}/{item.challenge_id}"},
            {"_id": f"{self.name}/{item.challenge_id}", "index": self.name,
             "challenge_id": item.challenge_id, "round_id": item.round_id,
             "signature": _encode(sig[i]), "seq": first + i, "claimed_at": now},
            upsert=True) for i, item in enumerate(items)]
        self.db[ENTRIES].bulk_write(ops, ordered=False)
        self._memory.add([item.challenge_id for item in items], sig, keys,
                         [item.round_id for item in items], [now] * len(items))
        self._seq = first + len(items) - 1

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
                self._sync()
                for start in range(0, len(items), CLAIM_CHUNK):
                    self._decide(items[start : start + CLAIM_CHUNK], write=True,
                                 own={it.challenge_id for it in items})
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
