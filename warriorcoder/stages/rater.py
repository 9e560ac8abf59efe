"""Rater: local score per battle from the judges' votes; ratings per round and per season.

Every rated battle is counted into two rating tallies (warriorcoder/arena/tally.py) as it is
stored: its round's and its arena's season. A leaderboard is computed from a tally, whose size
depends on the models and not on the battles, so refreshing one costs the same after a million
battles as after a hundred (docs/ratings.md).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from warriorcoder.arena.grounding import rate_grounded_battle
from warriorcoder.arena.judging import JudgeTally, battle_judge_tallies, judge_stats
from warriorcoder.arena.mining import judges_for as eligible_judges
from warriorcoder.arena.rating import (
    RatingScale,
    bradley_terry,
    rating_intervals,
    win_stats,
)
from warriorcoder.arena.tally import PRUNE_AT, BattleEntry, RatingTally
from warriorcoder.config import DEFAULT_ARENA, ArenaConfig
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

log = logging.getLogger(__name__)

# Confidence level of the leaderboard's rating intervals.
_CONFIDENCE = 0.95
# Writers of one tally at once retry this often before giving up (each retry rereads it).
_TALLY_ATTEMPTS = 50
# What a tally needs of a stored battle (rebuilding one reads only these fields).
_TALLY_FIELDS = ("battle_id", "round_id", "challenge_id", "model_a", "model_b", "status",
                 "local_score_a", "judge_calls", "judge_tokens", "tokens_a", "tokens_b")


def round_scope(round_id: str) -> str:
    """The tally (and stored board) key of a round."""
    return f"round/{round_id}"


def season_scope(arena: str) -> str:
    """The tally (and stored board) key of an arena's season. Round ids hold no "/", so the
    two kinds of key never meet."""
    return f"arena/{arena}"


def rate_judged_battle(
    config: ArenaConfig,
    pair: arena_pb2.ResponsePair,
    judgments: Sequence[arena_pb2.Judgment],
    execution_a: arena_pb2.ExecutionResult | None,
    execution_b: arena_pb2.ExecutionResult | None,
) -> arena_pb2.RatedBattle:
    """A battle's votes and local score under the arena's settings: the one place that rates a
    battle (the rater stores it; the judge stage's tournaments decide on the same score)."""
    ex = config.execution
    return rate_grounded_battle(
        pair,
        judgments,
        execution_a,
        execution_b,
        ex.weight if ex.enabled else None,
        strong_weight=config.judge.strong_verdict_weight,
        score=ex.score,
    )


def _judge_tallies(
    pair: arena_pb2.ResponsePair, judgments: Sequence[arena_pb2.Judgment]
) -> dict[str, JudgeTally]:
    """Each judge's tally over one battle; none (and a warning naming the battle) when the
    judgments do not fit the pair: the battle is still rated and counted."""
    try:
        return battle_judge_tallies(pair, judgments)
    except ValueError as error:
        log.warning("judge statistics skip a battle: %s", error)
        return {}


def _pair_of(battle: arena_pb2.RatedBattle) -> arena_pb2.ResponsePair:
    """The pair of a stored battle, carrying only what the judge statistics read."""
    pair = arena_pb2.ResponsePair(battle_id=battle.battle_id, model_a=battle.model_a,
                                  model_b=battle.model_b)
    pair.response_a.generation.completion_tokens = battle.tokens_a
    pair.response_b.generation.completion_tokens = battle.tokens_b
    return pair


def _counted_fields(doc: Mapping[str, Any]) -> arena_pb2.RatedBattle:
    """The fields a tally counts (`_TALLY_FIELDS`) of a stored battle document, read directly
    (the store's layout: defaults left out, 64-bit integers as strings, enums by name): a
    tenth of the cost of parsing the whole document."""
    status = str(doc.get("status", ""))
    return arena_pb2.RatedBattle(
        battle_id=str(doc.get("battle_id") or doc["_id"]),
        round_id=str(doc.get("round_id", "")),
        challenge_id=str(doc.get("challenge_id", "")),
        model_a=str(doc.get("model_a", "")),
        model_b=str(doc.get("model_b", "")),
        status=arena_pb2.BattleStatus.Value(status) if status else 0,  # type: ignore[arg-type]
        local_score_a=float(doc.get("local_score_a", 0.0)),
        judge_calls=int(doc.get("judge_calls", 0)),
        judge_tokens=int(doc.get("judge_tokens", 0)),
        tokens_a=int(doc.get("tokens_a", 0)),
        tokens_b=int(doc.get("tokens_b", 0)),
    )


def _entry(battle: arena_pb2.RatedBattle, judges: Mapping[str, JudgeTally]) -> BattleEntry:
    rated = battle.status == arena_pb2.BATTLE_STATUS_RATED
    return BattleEntry(
        model_a=battle.model_a,
        model_b=battle.model_b,
        rated=rated,
        score_a=battle.local_score_a if rated else 0.5,
        judge_calls=battle.judge_calls,
        judge_tokens=battle.judge_tokens,
        judges=judges,
    )


def _entry_doc(entry: BattleEntry) -> dict[str, Any]:
    """A battle's counted result (judges left out) as a document, for a move stored with it."""
    return {"model_a": entry.model_a, "model_b": entry.model_b, "rated": entry.rated,
            "score_a": entry.score_a, "judge_calls": entry.judge_calls,
            "judge_tokens": entry.judge_tokens}


def _entry_of(doc: Mapping[str, Any]) -> BattleEntry:
    """The result `_entry_doc` wrote."""
    return BattleEntry(model_a=str(doc["model_a"]), model_b=str(doc["model_b"]),
                       rated=bool(doc["rated"]), score_a=float(doc["score_a"]),
                       judge_calls=int(doc["judge_calls"]),
                       judge_tokens=int(doc["judge_tokens"]))


@dataclass
class _Move:
    """A stored battle's result changed (rated anew): counted out and in again once per tally,
    under its own `token` (a tally remembers it like a battle id). `records`: -1 when the
    battle's challenge has no rated battle left."""

    battle_id: str
    token: str
    old: BattleEntry
    new: BattleEntry
    records: int = 0


class _Change:
    """What one stored batch changes in one tally: battles stored for the first time (counted
    with their judges, and rated for Elo, in battle-id order), battles stored earlier but never
    counted (a writer stopped in between: counted unless the tally remembers them), battles
    rated anew (moves: counted out and in again unless the tally remembers the move), and the
    challenges that got their first rated battle."""

    def __init__(self) -> None:
        self.fresh: list[tuple[str, BattleEntry]] = []
        self.leftover: list[tuple[str, BattleEntry]] = []
        self.moved: list[_Move] = []
        # Challenges whose first rated battle this is; and ones marked by a writer that
        # stopped before counting them (counted unless the tally remembers them).
        self.new_records: list[tuple[str, str]] = []  # (challenge, its mark's token)
        self.leftover_records: list[tuple[str, str]] = []
        self.rounds: list[str] = []

    @property
    def uncounted_ids(self) -> set[str]:
        """Battles of the batch that no tally has counted from the store."""
        return {battle_id for battle_id, _ in [*self.fresh, *self.leftover]}

    def apply(self, tally: RatingTally, k_factor: float, scale: RatingScale, *,
              fresh_only: bool = False) -> None:
        """Count the change into `tally`; `fresh_only`: only the uncounted battles (the tally
        was just counted from the store without them, and with everything else as stored
        now)."""
        remembered = set(tally.recent)
        counted = sorted([*self.fresh, *((i, e) for i, e in self.leftover if i not in remembered)],
                         key=lambda pair: pair[0])
        for _, entry in counted:
            tally.add(entry)
        tally.rate_elo([entry for _, entry in counted], k_factor, scale)
        tally.remember(battle_id for battle_id, _ in counted)
        uncounted = self.uncounted_ids
        for move in self.moved:
            # Counted from the store, a battle already holds its latest result; one left out
            # of that count (uncounted) holds its first and moves on from there.
            if move.token in remembered or (fresh_only and move.battle_id not in uncounted):
                continue
            tally.add(move.old, -1, judges=False)
            tally.add(move.new, judges=False)
            if not fresh_only:
                tally.records += move.records
            tally.remember([move.token])
        if not fresh_only:
            records = [*self.new_records,
                       *(r for r in self.leftover_records if r[1] not in remembered)]
            tally.records += len(records)
            tally.remember(token for _, token in records)
        tally.rounds += [r for r in self.rounds if r not in tally.rounds]


class Rater:
    """Rates battles as their judgments arrive, keeps the rating tallies and writes the
    leaderboards: the only writer of both (the exporter reads the stored board,
    `current_leaderboard`)."""

    def __init__(self, config: ArenaConfig, store: ArenaStore) -> None:
        self.config = config
        self.store = store
        r = config.rating
        self.scale = RatingScale(initial=r.initial, scale=r.scale, base=r.base)
        self.roster = [e.id for e in config.roster]
        self._arenas: dict[str, str] = {}  # round -> arena, once registered
        self._existing: set[str] = set()  # tally scopes known to be stored
        self._marked: set[str] = set()  # rounds whose rated challenges are all marked
        # Tally documents read (a refresh reads one, never the battles behind it).
        self.tally_reads = 0

    def handle(self, items: Sequence[arena_pb2.BattleJudgments]) -> list[arena_pb2.RatedBattle]:
        """Rate each battle, store it and count it in its round's and season's tallies (same
        battle twice: same document, counted once).

        With execution on, the judges' score is grounded by the execution results that came
        with the judgments (see arena.grounding); without them the score is the judges' alone.
        """
        rated = []
        judges: dict[str, dict[str, JudgeTally]] = {}
        for item in items:
            battle = rate_judged_battle(
                self.config,
                item.pair,
                item.judgments,
                item.execution_a if item.HasField("execution_a") else None,
                item.execution_b if item.HasField("execution_b") else None,
            )
            if self.config.judge.adaptive:
                # Adaptive judging lists only the judges it asked; the rest were skipped.
                battle.skipped_judges.extend(
                    j for j in eligible_judges(item.pair.model_a, item.pair.model_b, self.roster)
                    if j not in item.pair.judges
                )
            rated.append(battle)
            judges[battle.battle_id] = _judge_tallies(item.pair, item.judgments)
        self.record(rated, judges)
        return rated

    def record(
        self,
        battles: Sequence[arena_pb2.RatedBattle],
        judges: Mapping[str, Mapping[str, JudgeTally]] | None = None,
    ) -> None:
        """Store rated battles (one request) and count them into the tallies.

        A battle the store did not hold is counted, and rated for Elo, once. A stored battle
        rated anew with a different result is counted out and in again (Elo keeps its first
        result; the judge statistics keep their first judgments). A battle stored unchanged, or
        stored a moment ago by another writer, changes nothing. `judges`: each battle's judge
        tallies by battle id (none given: its judges are not counted).
        """
        latest = {b.battle_id: b for b in battles}  # a battle twice in a batch: the last one
        if not latest:
            return
        judges = judges or {}
        # The tallies exist before the battles are written: a tally counted from the store
        # while another writer stores its battles could count those twice.
        for round_id in {b.round_id for b in latest.values()}:
            self._mark_records(round_id)
            arena = self.arena_of(round_id)
            for scope in (round_scope(round_id), season_scope(arena)):
                if scope not in self._existing:
                    rounds = [round_id] if scope.startswith("round/") else self._season_rounds(
                        arena)
                    self._tally(scope, rounds, create=True)
        before = self.store.battles_of(latest)
        # Stored but never counted: a writer stopped between storing and counting them.
        pending = self.store.untallied_among(before)
        # Ops not yet counted into every tally, per stored battle: (token, old, new) where old
        # None counts the battle in (a leftover). A move is stored with the battle's mark
        # before any tally counts it, so a writer stopped anywhere leaves it to be counted
        # when the batch comes again.
        stored_ops = self.store.pending_moves(pending)
        ops: dict[str, list[dict[str, Any]]] = {}
        for battle_id in sorted(set(before) & set(latest)):
            mine = stored_ops.get(battle_id) or (
                [{"token": battle_id, "old": None,
                  "new": _entry_doc(_entry(before[battle_id], {}))}]
                if battle_id in pending else [])
            if before[battle_id] != latest[battle_id]:
                mine = [*mine, {"token": f"m:{battle_id}:{uuid.uuid4().hex}",
                                "old": _entry_doc(_entry(before[battle_id], {})),
                                "new": _entry_doc(_entry(latest[battle_id], {}))}]
            if mine:
                ops[battle_id] = mine
        moves = {i: o for i, o in ops.items() if any(op["old"] is not None for op in o)}
        inserted = self.store.save_battles_inserting(
            latest.values(), untallied={i for i in latest if i not in before} | set(ops),
            moves=moves)
        changes: dict[str, _Change] = {}
        gained: dict[str, str] = {}  # challenge -> round: a battle of it is rated now
        lost: dict[str, tuple[str, _Move]] = {}  # challenge -> (round, move): rated, now failed
        for battle_id in sorted(latest):
            battle = latest[battle_id]
            change = changes.setdefault(battle.round_id, _Change())
            entry = _entry(battle, judges.get(battle_id, {}))
            if battle_id in inserted:
                change.fresh.append((battle_id, entry))
            elif battle_id in ops:
                for op in ops[battle_id]:
                    new = _entry_of(op["new"])
                    if op["old"] is None:  # with the judges the batch carries
                        change.leftover.append((battle_id, replace(new, judges=entry.judges)))
                        continue
                    move = _Move(battle_id, str(op["token"]), _entry_of(op["old"]), new)
                    change.moved.append(move)
                    if move.old.rated and not move.new.rated:
                        lost.setdefault(battle.challenge_id, (battle.round_id, move))
            else:
                continue
            if entry.rated:
                gained[battle.challenge_id] = battle.round_id
        # Records (challenges with a rated battle) by key, never by a query over the round.
        marked = self.store.mark_rated_challenges(gained.items())
        for challenge, token in marked.items():
            changes[gained[challenge]].new_records.append((challenge, token))
        leftover_challenges = {latest[i].challenge_id for i in pending} & set(gained)
        unfinished = self.store.pending_marks(leftover_challenges - set(marked))
        for challenge, token in unfinished.items():
            changes[gained[challenge]].leftover_records.append((challenge, token))
        lost = {c: r for c, r in lost.items() if c not in gained}
        if lost:  # rare: a rated battle rated again as failed
            gone = [c for c, n in self.store.rated_battle_counts(lost).items() if n == 0]
            self.store.unmark_rated_challenges(gone)
            for challenge in gone:
                lost[challenge][1].records = -1
        for round_id, change in changes.items():
            change.rounds = [round_id]
            arena = self.arena_of(round_id)
            self._update(round_scope(round_id), [round_id], change)
            self._update(season_scope(arena), None, change, arena=arena)
        # Counted in both tallies (which remember them): not counted again when redelivered.
        self.store.mark_tallied(inserted | set(ops))
        self.store.clear_pending_marks({*marked, *unfinished})

    def count_untallied(self, round_id: str) -> int:
        """Count the round's stored battles that a rater stopped before counting (stored
        marked untallied, their batch never delivered again), with the judges of their stored
        judgments; returns how many. For a run that resumes from its store, where a battle
        stored RATED is never rated again: without this the tallies would lack it for good."""
        untallied = self.store.untallied_among(self.store.battle_ids(round_id))
        if not untallied:
            return 0
        battles = self.store.battles_of(sorted(untallied))
        judgments = self.store.judgments_of(battles)
        judges = {i: _judge_tallies(_pair_of(b), judgments[i])
                  for i, b in battles.items() if judgments[i]}
        log.info("round %s: counting %d stored battles a stopped rater had not counted",
                 round_id, len(battles))
        self.record(list(battles.values()), judges)
        return len(battles)

    def _mark_records(self, round_id: str) -> None:
        """Make sure every challenge of the round with a rated battle is marked (records are
        counted by these marks): once per round, for battles stored before marks existed."""
        if round_id in self._marked:
            return
        if not (self.store.round_info(round_id) or {}).get("records_marked"):
            rated = arena_pb2.BattleStatus.Name(arena_pb2.BATTLE_STATUS_RATED)
            for page in self.store.stream_battles(round_id, ("challenge_id", "status")):
                self.store.mark_rated_challenges(
                    ((str(d["challenge_id"]), round_id) for d in page
                     if d.get("status") == rated), pending=False)
            self.store.save_round_info(round_id, records_marked=True)
        self._marked.add(round_id)

    def arena_of(self, round_id: str) -> str:
        """The arena `round_id` belongs to; a round first seen here joins the configured
        arena."""
        if round_id not in self._arenas:
            self._arenas[round_id] = self.store.register_round(round_id, self.config.arena)
        return self._arenas[round_id]

    def _season_rounds(self, arena: str) -> list[str]:
        return self.store.arena_rounds(arena, DEFAULT_ARENA)

    def _update(
        self, scope: str, rounds: list[str] | None, change: _Change, arena: str = ""
    ) -> None:
        """Apply `change` to the stored tally of `scope` (compare and swap: a writer that
        loses the race rereads and applies again). A scope with no tally yet is first counted
        from the store (which already holds this batch) without the batch's new battles, whose
        judges only the batch carries."""
        k_factor = self.config.rating.k_factor
        for attempt in range(_TALLY_ATTEMPTS):
            if attempt:
                # Lost a race: a random, growing pause so that replicas stop colliding.
                time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** attempt)))
            doc = self.store.rating_tally(scope)
            self.tally_reads += 1
            if doc is None:
                tally = self.rebuild(rounds if rounds is not None else self._season_rounds(arena),
                                     skip=change.uncounted_ids)
                change.apply(tally, k_factor, self.scale, fresh_only=True)
                version = None
            else:
                tally = RatingTally.from_document(doc)
                version = int(doc["version"])
                if len(tally.recent) > PRUNE_AT:
                    tally.recent = self._still_marked(tally.recent)
                change.apply(tally, k_factor, self.scale)
            if self.store.put_rating_tally(scope, tally.to_document(), version):
                return
        raise RuntimeError(f"rating tally {scope!r}: other writers kept changing it "
                           f"({_TALLY_ATTEMPTS} attempts)")

    def _still_marked(self, ids: Sequence[str]) -> list[str]:
        """The ids a tally remembers whose battle (for a battle id or a move token "m:<battle
        id>:<hex>") or challenge (a record token "c:<challenge id>[:<hex>]") is still marked not
        counted: only those can come again. The others are dropped for good: their marks are
        cleared and never set again (every id is unique)."""
        battles: dict[str, str] = {}
        challenges: dict[str, str] = {}
        for token in ids:
            if token.startswith("m:"):
                battles[token] = token[2:].rpartition(":")[0]
            elif token.startswith("c:"):
                head, _, tail = token[2:].rpartition(":")
                unique = bool(head) and len(tail) == 32 and all(
                    ch in "0123456789abcdef" for ch in tail)
                challenges[token] = head if unique else token[2:]
            else:  # battle ids are hexadecimal: never "m:" or "c:"
                battles[token] = token
        marked = self.store.untallied_among(set(battles.values()))
        pending = self.store.pending_marks(set(challenges.values()))
        kept = [t for t in ids if battles.get(t) in marked or challenges.get(t) in pending]
        log.debug("rating tally: %d of %d remembered ids still marked not counted",
                 len(kept), len(ids))
        return kept

    def rebuild(self, rounds: Iterable[str], skip: Collection[str] = ()) -> RatingTally:
        """A tally counted from the stored battles of `rounds` (and their judgments), read
        page by page: memory holds one page and the tally, never the rounds. Elo runs over
        each round's battles in battle-id order, the rounds in the order given. Battles in
        `skip` are left out, except from the count of challenges with a rated battle."""
        tally = RatingTally()
        k_factor = self.config.rating.k_factor
        for round_id in rounds:
            tally.rounds.append(round_id)
            for page in self.store.stream_battles(round_id, _TALLY_FIELDS):
                battles = [_counted_fields(doc) for doc in page if str(doc["_id"]) not in skip]
                judgments = self.store.judgments_of(b.battle_id for b in battles)
                entries = [
                    _entry(b, _judge_tallies(_pair_of(b), judgments[b.battle_id])
                           if judgments[b.battle_id] else {})
                    for b in battles
                ]
                for entry in entries:
                    tally.add(entry)
                tally.rate_elo(entries, k_factor, self.scale)
            tally.records += self.store.rated_challenge_count(round_id)
        return tally

    def _tally(self, scope: str, rounds: list[str], create: bool = False
               ) -> RatingTally | None:
        """The stored tally of `scope`; counted from the store (and stored) when there is none
        yet but `rounds` hold battles (or `create` is set); None when they hold none.

        With `create`, only makes sure the tally exists (a process that has seen a tally never
        checks it again: tallies are never removed), and returns None.
        """
        for _ in range(_TALLY_ATTEMPTS):
            doc = self.store.rating_tally(scope)
            self.tally_reads += 1
            if doc is not None:
                self._existing.add(scope)
                return None if create else RatingTally.from_document(doc)
            if not create and not any(
                    self.store.count("battles", {"round_id": r}) for r in rounds):
                return None
            # A lost race (another writer stored it first) rereads.
            self.store.put_rating_tally(scope, self.rebuild(rounds).to_document(), None)
        raise RuntimeError(f"rating tally {scope!r}: other writers kept changing it")

    # -- leaderboards -----------------------------------------------------------------------
    def leaderboard(self, round_id: str) -> arena_pb2.Leaderboard:
        """The round's leaderboard computed from its tally now, and stored (an empty board
        when the round has no battles)."""
        tally = self._tally(round_scope(round_id), [round_id]) or RatingTally(rounds=[round_id])
        board = self._compute(tally, round_id=round_id, arena=self._stored_arena(round_id))
        self.store.save_leaderboard(board)
        return board

    def season_leaderboard(self, arena: str | None = None) -> arena_pb2.Leaderboard | None:
        """The season leaderboard of `arena` (default: the configured one) over every battle
        of its rounds, computed from its tally now and stored; None when it has no battles."""
        arena = arena or self.config.arena
        tally = self._tally(season_scope(arena), self._season_rounds(arena))
        if tally is None:
            return None
        board = self._compute(tally, round_id="", arena=arena)
        self.store.save_season_leaderboard(board)
        return board

    def current_leaderboard(self, round_id: str) -> arena_pb2.Leaderboard | None:
        """The stored leaderboard when it was computed from the round's tally as stored now
        (the rater service refreshes it as battles arrive); otherwise one computed now and not
        stored. None when the round has no battles."""
        tally = self._tally(round_scope(round_id), [round_id])
        if tally is None:
            return None
        stored = self.store.leaderboard(round_id)
        if stored is not None and stored.battles_digest == tally.digest(
                self.config.config_hash()):
            return stored
        return self._compute(tally, round_id=round_id, arena=self._stored_arena(round_id))

    def _stored_arena(self, round_id: str) -> str:
        info = self.store.round_info(round_id) or {}
        return str(info.get("arena") or DEFAULT_ARENA)

    def _compute(self, tally: RatingTally, *, round_id: str, arena: str
                 ) -> arena_pb2.Leaderboard:
        """Bradley-Terry with 95% intervals, Elo and judge statistics of a tally.

        Models are listed by comparison group (models that never met, directly or through
        others, are in different groups, each on its own scale), then by Bradley-Terry rating.
        """
        outcomes = tally.outcomes()
        cfg = self.config.rating
        bt = bradley_terry(outcomes, scale=self.scale)
        intervals = rating_intervals(
            outcomes,
            scale=self.scale,
            confidence=_CONFIDENCE,
            method=cfg.intervals,
            rounds=cfg.bootstrap_rounds,
            seed=self.config.seed,
        )
        bootstrap = cfg.intervals == "bootstrap"
        stats = win_stats(outcomes)
        board = arena_pb2.Leaderboard(
            round_id=round_id,
            arena=arena,
            season=not round_id,
            rounds=tally.rounds,
            battles=tally.battles,
            failed_battles=tally.failed,
            bootstrap_rounds=cfg.bootstrap_rounds if bootstrap else 0,
            interval_method=(
                f"{_CONFIDENCE:.0%} bootstrap, {cfg.bootstrap_rounds} rounds (profile "
                "likelihood for one-sided records)"
                if bootstrap
                else f"{_CONFIDENCE:.0%} profile likelihood"
            ),
            judge_calls=tally.judge_calls,
            judge_tokens=tally.judge_tokens,
            # One SFT record per challenge with a rated battle (arena.selection).
            records=tally.records,
            battles_digest=tally.digest(self.config.config_hash()),
        )
        if board.records:
            board.judge_tokens_per_record = board.judge_tokens / board.records
        for model in sorted(bt, key=lambda m: (intervals[m].group, -bt[m], m)):
            s = stats[model]
            interval = intervals[model]
            board.ratings.add(
                model_id=model,
                elo=tally.elo.get(model, self.scale.initial),
                bradley_terry=bt[model],
                bradley_terry_lower=interval.lower,
                bradley_terry_upper=interval.upper,
                group=interval.group,
                lower_unbounded=interval.lower_unbounded,
                upper_unbounded=interval.upper_unbounded,
                anchor=interval.anchor,
                battles=s.battles,
                wins=s.wins,
                losses=s.losses,
                ties=s.ties,
                win_rate=s.win_rate,
            )
        # Failed battles count too: a judge that never writes a verdict must show it.
        board.judges.extend(judge_stats(j, t) for j, t in sorted(tally.judges.items()))
        return board


def season_newcomers(store: ArenaStore, config: ArenaConfig, round_id: str) -> list[str]:
    """Experts of the roster that the arena's other rounds never rated (none when it has no
    other rated round): the challenger pairs them against the pool first."""
    rated: set[str] = set()
    for other in store.arena_rounds(config.arena, DEFAULT_ARENA):
        doc = store.rating_tally(round_scope(other)) if other != round_id else None
        if doc is not None:
            tally = RatingTally.from_document(doc)
            rated.update(name for key in tally.cells for name in key[:2])
    return [e.id for e in config.roster if e.id not in rated] if rated else []
