"""What the viewer's pages show, read from the store: the battle list (paged), one battle, a
round's leaderboard, judges and funnel. Synchronous functions over an ArenaStore; the server
runs them on its store thread."""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from warriorcoder.arena.battle_review import (
    Outcome,
    battle_outcome,
    contradicting_judges,
    execution_disagrees,
)
from warriorcoder.arena.judging import latest_judgments
from warriorcoder.config import ArenaConfig
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2
from warriorcoder.viewer.exports import (
    ExportFiles,
    ExportIndex,
    Selection,
    WrittenRecords,
    explain_selection,
)
from warriorcoder.viewer.filters import BattleFilter

PAGE_SIZE = 50
# A filter the store cannot evaluate (judges that contradicted themselves) reads candidates in
# chunks, and at most this many per page: a page of a rare filter on a big round stays fast and
# says how far it searched; its "next" link goes on from there.
SCAN_CHUNK = 250
SCAN_LIMIT = 5000
# Characters of a challenge shown in the battle list.
INSTRUCTION_CHARS = 110


@dataclass(frozen=True)
class BattleRow:
    """One line of the battle list."""

    battle: arena_pb2.RatedBattle
    outcome: Outcome
    disagreement: bool
    # Judges that contradicted themselves; None when the judgments were not read.
    contradicting: list[str] | None = None


@dataclass(frozen=True)
class BattlePage:
    """A page of the battle list, with the cursors of its neighbours."""

    rows: list[BattleRow]
    next_after: str | None
    prev_before: str | None
    # Battles matching the filter in all; None when the store cannot count them (a filter on
    # judgments) or counting was not asked for.
    total: int | None
    # Candidates read for a filter on judgments; `scan_stopped` when SCAN_LIMIT ended the page.
    scanned: int = 0
    scan_stopped: bool = False
    # The start of each listed battle's challenge, by challenge id.
    instructions: dict[str, str] = field(default_factory=dict)


def _merge(
    store: ArenaStore,
    queries: Sequence[dict[str, Any]],
    after: str | None,
    before: str | None,
    count: int,
) -> list[arena_pb2.RatedBattle]:
    """The first `count` battles after `after` (or, with `before` alone, the last `count`
    before it) over disjoint queries, in battle-id order."""
    lists = [store.battles_page(q, after=after, before=before, limit=count) for q in queries]
    merged = list(heapq.merge(*lists, key=lambda b: b.battle_id))
    if before is not None and after is None:
        return merged[-count:]
    return merged[:count]


def _row(battle: arena_pb2.RatedBattle, contradicting: list[str] | None = None) -> BattleRow:
    return BattleRow(battle, battle_outcome(battle), execution_disagrees(battle), contradicting)


def _shortened(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= INSTRUCTION_CHARS else words[:INSTRUCTION_CHARS - 1] + "…"


def _contradicting(judgments: Sequence[arena_pb2.Judgment]) -> list[str] | None:
    try:
        return contradicting_judges(judgments)
    except ValueError:  # a judgment without an order or a judge: shown, never matched
        return None


@dataclass
class _Scan:
    rows: list[BattleRow] = field(default_factory=list)
    scanned: int = 0
    stopped: bool = False
    # Where the next page in the scan's direction starts (None: nothing beyond).
    cursor: str | None = None


def _scan(
    store: ArenaStore,
    queries: Sequence[dict[str, Any]],
    flt: BattleFilter,
    start: str | None,
    backwards: bool,
    limit: int,
) -> _Scan:
    """Candidates in chunks from `start` on (downwards when `backwards`), kept when a judge
    (the filter's judge, when it names one) contradicted itself; stops after limit + 1 matches
    or SCAN_LIMIT candidates. Rows come back in battle-id order."""
    out = _Scan()
    matches: list[BattleRow] = []
    cursor = start
    exhausted = False
    while len(matches) <= limit and out.scanned < SCAN_LIMIT and not exhausted:
        size = min(SCAN_CHUNK, SCAN_LIMIT - out.scanned)
        chunk = (_merge(store, queries, None, cursor, size) if backwards
                 else _merge(store, queries, cursor, None, size))
        exhausted = len(chunk) < size
        judgments = store.judgments_of(b.battle_id for b in chunk)
        for battle in reversed(chunk) if backwards else chunk:
            out.scanned += 1
            cursor = battle.battle_id
            judges = _contradicting(judgments[battle.battle_id])
            if judges and (not flt.judge or flt.judge in judges):
                matches.append(_row(battle, judges))
                if len(matches) > limit:
                    break
    if len(matches) > limit:
        matches = matches[:limit]
        out.cursor = matches[-1].battle.battle_id
    elif not exhausted:
        out.stopped = True
        out.cursor = cursor
    out.rows = matches[::-1] if backwards else matches
    return out


def battle_page(
    store: ArenaStore,
    round_id: str,
    flt: BattleFilter,
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = PAGE_SIZE,
    count: bool = False,
) -> BattlePage:
    """One page of the round's battles under `flt`, in battle-id order: the first `limit`
    after `after`, the last `limit` before `before`, or the first page. Reads O(limit)
    documents per query of the filter, whatever the size of the round (a filter on judgments
    reads at most SCAN_LIMIT candidates). With `count`, also the number of matches (which
    reads them all)."""
    backwards = before is not None and after is None
    queries = flt.queries(round_id)
    scanned, stopped = 0, False
    if flt.needs_judgments:
        scan = _scan(store, queries, flt, before if backwards else after, backwards, limit)
        rows, scanned, stopped, beyond = scan.rows, scan.scanned, scan.stopped, scan.cursor
    else:
        found = _merge(store, queries, after, before, limit + 1)
        more = len(found) > limit
        found = found[1:] if backwards and more else found[:limit]
        rows = [_row(b) for b in found]
        edge = (found[0] if backwards else found[-1]).battle_id if found else None
        beyond = edge if more else None
    total = None
    if count and not flt.needs_judgments:
        total = sum(store.count("battles", q) for q in queries)
    first = rows[0].battle.battle_id if rows else None
    last = rows[-1].battle.battle_id if rows else None
    challenges = store.challenges_of(r.battle.challenge_id for r in rows)
    instructions = {cid: _shortened(c.instruction) for cid, c in challenges.items()}
    if backwards:
        # Coming back from a later page: that page follows this one.
        return BattlePage(rows, last or before, beyond, total, scanned, stopped, instructions)
    prev_before = None if after is None else (first or after)
    return BattlePage(rows, beyond, prev_before, total, scanned, stopped, instructions)


@dataclass(frozen=True)
class JudgeRow:
    """One judge of a battle: its vote and its latest judgment in each order."""

    judge: str
    vote: arena_pb2.Vote | None
    ab: arena_pb2.Judgment | None
    ba: arena_pb2.Judgment | None
    contradicted: bool
    # Attempts stored besides the latest ones (re-asked after an unreadable verdict).
    earlier_attempts: int


@dataclass(frozen=True)
class ExportView:
    """Whether and why the battle's answers were exported (see viewer.exports)."""

    selection: Selection | None
    files: ExportFiles | None
    # The challenge's records in the files (None: the files hold none for it).
    written: WrittenRecords | None
    # Why the selection could not be computed, when it could not.
    note: str = ""


@dataclass(frozen=True)
class BattleDetail:
    """Everything the page of one battle shows."""

    battle: arena_pb2.RatedBattle
    outcome: Outcome
    disagreement: bool
    challenge: arena_pb2.Challenge | None
    response_a: arena_pb2.Response | None
    response_b: arena_pb2.Response | None
    judges: list[JudgeRow]
    export: ExportView
    # Other battles of the same challenge (tournaments), by id.
    siblings: list[arena_pb2.RatedBattle]


def _judge_rows(
    battle: arena_pb2.RatedBattle, judgments: Sequence[arena_pb2.Judgment]
) -> list[JudgeRow]:
    votes = {v.judge: v for v in battle.votes}
    try:
        latest = latest_judgments(judgments)
    except ValueError:  # a malformed judgment: show the well-formed ones
        latest = latest_judgments(
            j for j in judgments
            if j.judge and j.order in (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA))
    contradicted = set(_contradicting(list(latest.values())) or [])
    judges = sorted({*votes, *(judge for judge, _ in latest)})
    rows = []
    for judge in judges:
        ab, ba = latest.get((judge, arena_pb2.ORDER_AB)), latest.get((judge, arena_pb2.ORDER_BA))
        kept = sum(1 for j in (ab, ba) if j is not None)
        earlier = sum(1 for j in judgments if j.judge == judge) - kept
        rows.append(JudgeRow(judge, votes.get(judge), ab, ba, judge in contradicted, earlier))
    return rows


def battle_detail(
    store: ArenaStore,
    battle_id: str,
    config: ArenaConfig | None,
    exports: ExportIndex,
) -> BattleDetail | None:
    """The battle's page; None when the store has no such battle."""
    battle = store.battle(battle_id)
    if battle is None:
        return None
    challenge = store.challenge(battle.challenge_id)
    responses = store.responses_of([(battle.challenge_id, battle.model_a),
                                    (battle.challenge_id, battle.model_b)])
    siblings = store.battles_of_challenge(battle.challenge_id)
    export = _export_view(store, battle, siblings, config, exports)
    return BattleDetail(
        battle,
        battle_outcome(battle),
        execution_disagrees(battle),
        challenge,
        responses.get((battle.challenge_id, battle.model_a)),
        responses.get((battle.challenge_id, battle.model_b)),
        _judge_rows(battle, store.judgments(battle_id)),
        export,
        [b for b in siblings if b.battle_id != battle_id],
    )


def _export_view(
    store: ArenaStore,
    battle: arena_pb2.RatedBattle,
    siblings: Sequence[arena_pb2.RatedBattle],
    config: ArenaConfig | None,
    exports: ExportIndex,
) -> ExportView:
    files = exports.current()
    written = files.records.get(battle.challenge_id) if files is not None else None
    if config is None:
        return ExportView(None, files, written, "the arena config is unknown (no config.yaml in "
                          "the run folder): the selection is not recomputed")
    board = store.leaderboard(battle.round_id)
    if board is None:
        return ExportView(None, files, written, "no leaderboard stored yet: the answers are "
                          "chosen once the round is rated")
    models = {m for b in siblings for m in (b.model_a, b.model_b)}
    answers = {r.model_id: r.generation.text for r in store.responses_of(
        (battle.challenge_id, m) for m in models).values()}
    selection = explain_selection(config, siblings, board, answers)
    note = "" if selection is not None else (
        "no rated battle of this challenge is on the stored leaderboard yet")
    return ExportView(selection, files, written, note)


@dataclass(frozen=True)
class FunnelStep:
    """One step of the round's funnel: how many items were left after it."""

    name: str
    count: int | None
    note: str = ""


@dataclass(frozen=True)
class RoundSummary:
    """The round page: the stored leaderboard, the funnel and what the store holds now."""

    round_id: str
    board: arena_pb2.Leaderboard | None
    funnel: list[FunnelStep]
    rejected: dict[str, int]
    battles: int
    rated: int
    failed: int
    # The export the files hold (None: no export written yet).
    export: ExportFiles | None
    info: dict[str, Any]
    # The season board of the round's arena (every round of it), when one is stored.
    season: arena_pb2.Leaderboard | None = None


def round_summary(store: ArenaStore, round_id: str, exports: ExportIndex) -> RoundSummary:
    """The round's leaderboard, judge table and funnel."""
    info = store.round_info(round_id) or {}
    funnel = info.get("funnel") if isinstance(info.get("funnel"), dict) else {}
    assert isinstance(funnel, dict)
    battles = store.count("battles", {"round_id": round_id})
    rated = store.count("battles", {"round_id": round_id, "status": "BATTLE_STATUS_RATED"})
    challenges = store.count("challenges", {"round_id": round_id})
    files = exports.current()

    def number(key: str) -> int | None:
        value = funnel.get(key)
        return int(value) if isinstance(value, int | float) else None

    mined = number("mined")
    user = number("user")
    steps = [
        FunnelStep("mined", mined, f"+ {user} user instructions" if user else ""),
        FunnelStep("cleaned", number("cleaned")),
        FunnelStep("deduplicated", number("deduplicated")),
        FunnelStep("decontaminated", number("decontaminated")),
        FunnelStep("filtered (quality, diversity)", number("diverse")),
        FunnelStep("challenges", challenges, "stored, user instructions included"),
        FunnelStep("battles", battles),
        FunnelStep("rated", rated),
        FunnelStep("failed", battles - rated),
        FunnelStep(
            "exported (SFT records)",
            sum(1 for r in files.records.values() if r.sft_model) if files is not None else None,
            "" if files is not None else "no export written yet",
        ),
        FunnelStep(
            "exported (preference pairs)",
            sum(1 for r in files.records.values() if r.chosen_model) if files is not None
            else None,
        ),
    ]
    rejected = funnel.get("rejected") if isinstance(funnel.get("rejected"), dict) else {}
    assert isinstance(rejected, dict)
    board = store.leaderboard(round_id)
    season = store.season_leaderboard(board.arena) if board is not None and board.arena else None
    return RoundSummary(round_id, board, steps, {str(k): int(v) for k, v in rejected.items()},
                        battles, rated, battles - rated, files, info, season)


def live_token(store: ArenaStore, round_id: str, battle_id: str | None = None) -> str:
    """Changes whenever what a page shows may have changed. The embedded store says for free
    whether anything was written since (its data version); on MongoDB the token is the round's
    battle count (an index count on a real server), the stored leaderboard, and for a battle's
    page that battle and its judgment count. Cheap: the live script asks every few seconds
    while a page is open."""
    version = store.data_version()
    if version is not None:
        return f"v{version}"
    parts = [store.count("battles", {"round_id": round_id})]
    board = store.leaderboard(round_id)
    digest = board.battles_digest if board is not None else ""
    if battle_id is not None:
        battle = store.battle(battle_id)
        parts.append(store.count("judgments", {"battle_id": battle_id}))
        if battle is not None:
            digest += hashlib.sha256(battle.SerializeToString(deterministic=True)).hexdigest()
    return "-".join(str(p) for p in parts) + ":" + digest
