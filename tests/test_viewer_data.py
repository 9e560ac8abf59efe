"""The viewer's read side: filters as store queries agree with the arena's rules, paging
through the store (forwards, backwards, over a scan limit) lists every match once, in order, on
the embedded store and on the MongoDB wire server; export reasons; highlighting escapes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from warriorcoder.arena.battle_review import (
    battle_outcome,
    contradicting_judges,
    execution_disagrees,
)
from warriorcoder.config import parse_config
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2
from warriorcoder.viewer import data
from warriorcoder.viewer.exports import ExportIndex, explain_selection, read_export
from warriorcoder.viewer.filters import BattleFilter, FilterError
from warriorcoder.viewer.highlight import MAX_CHARS, Segment, answer_html, segments

MODELS = ("m0", "m1", "m2", "m3")
SCORES = (0.0, 0.25, 0.5, 0.75, 1.0)
A, B, TIE, INVALID = (arena_pb2.VERDICT_A, arena_pb2.VERDICT_B, arena_pb2.VERDICT_TIE,
                      arena_pb2.VERDICT_INVALID)
AB, BA = arena_pb2.ORDER_AB, arena_pb2.ORDER_BA


def _judgment(battle_id: str, judge: str, order: int, position: int) -> arena_pb2.Judgment:
    battle_verdict = position if order == AB or position in (TIE, INVALID) else (
        B if position == A else A)
    return arena_pb2.Judgment(judgment_id=f"{battle_id}/{judge}/{order}", battle_id=battle_id,
                              judge=judge, order=order, position_verdict=position,
                              verdict=battle_verdict, attempts=1)


def make_round(store: ArenaStore, n: int = 90, round_id: str = "r1") -> list[arena_pb2.RatedBattle]:
    """n battles of every kind: each outcome, local score 0 (not stored at all), failed ones,
    executions that agree and disagree with the judges, judges that contradict themselves."""
    battles, judgments = [], []
    for i in range(n):
        a, b = MODELS[i % 4], MODELS[(i + 1 + i // 4 % 3) % 4]
        judges = [m for m in MODELS if m not in (a, b)]
        battle = arena_pb2.RatedBattle(battle_id=f"{i * 7919 % 1000:03d}{i:03d}",
                                       challenge_id=f"c{i // 3}", round_id=round_id,
                                       model_a=a, model_b=b)
        if i % 9 == 4:
            battle.status = arena_pb2.BATTLE_STATUS_FAILED
            battle.failure_reason = f"model {b} did not answer"
        else:
            battle.status = arena_pb2.BATTLE_STATUS_RATED
            battle.local_score_a = SCORES[i % 5]
            if i % 3 == 0:
                battle.judge_score_a = SCORES[(i + 1) % 5]
                battle.execution_score_a = (1.0, 0.0, 0.5)[i % 4 % 3]
        # Judge 0 contradicts itself in every third battle (A first -> A, B first -> A by
        # position = B for the battle); judge 1 always ties consistently.
        contradiction = i % 3 == 1
        first = judges[0]
        judgments += [_judgment(battle.battle_id, first, AB, A),
                      _judgment(battle.battle_id, first, BA, A if contradiction else B)]
        judgments += [_judgment(battle.battle_id, judges[1], AB, TIE),
                      _judgment(battle.battle_id, judges[1], BA, TIE)]
        battle.votes.add(judge=first, verdict=TIE if contradiction else A)
        battle.votes.add(judge=judges[1], verdict=TIE)
        battles.append(battle)
    store.save_battles(battles)
    store.save_judgments(judgments)
    # Another round's battles never show.
    other = arena_pb2.RatedBattle(battle_id="0000r2", round_id="r2", model_a="m0", model_b="m1",
                                  status=arena_pb2.BATTLE_STATUS_RATED, local_score_a=1.0)
    store.save_battles([other])
    return battles


def expected(battles: list[arena_pb2.RatedBattle], flt: BattleFilter,
             judgments: dict[str, list[arena_pb2.Judgment]]) -> list[str]:
    """The battles `flt` shows, by the arena's rules in Python."""
    out = []
    for b in battles:
        outcome = battle_outcome(b)
        if flt.model and flt.model not in (b.model_a, b.model_b):
            continue
        if flt.judge and flt.judge not in [v.judge for v in b.votes]:
            continue
        if flt.outcome in ("won", "lost"):
            side = "a" if b.model_a == flt.model else "b"
            if outcome in ("tie", "failed") or (outcome == side) != (flt.outcome == "won"):
                continue
        elif flt.outcome and outcome != flt.outcome:
            continue
        if flt.disagreement and not execution_disagrees(b):
            continue
        if flt.contradiction:
            judges = contradicting_judges(judgments[b.battle_id])
            if not judges or (flt.judge and flt.judge not in judges):
                continue
        out.append(b.battle_id)
    return sorted(out)


def all_pages(store: ArenaStore, flt: BattleFilter, limit: int) -> tuple[list[str], list[str]]:
    """Every id the list shows, following "next" from the first page and "previous" from the
    last page."""
    forward: list[str] = []
    page = data.battle_page(store, "r1", flt, limit=limit)
    for _ in range(1000):
        forward += [r.battle.battle_id for r in page.rows]
        if page.next_after is None:
            break
        page = data.battle_page(store, "r1", flt, after=page.next_after, limit=limit)
    backward: list[str] = []
    page = data.battle_page(store, "r1", flt, before="~", limit=limit)
    for _ in range(1000):
        backward = [r.battle.battle_id for r in page.rows] + backward
        if page.prev_before is None:
            break
        page = data.battle_page(store, "r1", flt, before=page.prev_before, limit=limit)
    return forward, backward


FILTERS = [
    BattleFilter(),
    BattleFilter(model="m1"),
    BattleFilter(judge="m2"),
    *(BattleFilter(outcome=o) for o in ("a", "b", "tie", "failed")),
    BattleFilter(model="m2", outcome="won"),
    BattleFilter(model="m2", outcome="lost"),
    BattleFilter(model="m0", outcome="b"),
    BattleFilter(disagreement=True),
    BattleFilter(model="m3", disagreement=True),
    BattleFilter(contradiction=True),
    BattleFilter(contradiction=True, judge="m1"),
    BattleFilter(contradiction=True, model="m0", outcome="won"),
]


def test_every_filter_pages_through_exactly_its_battles(store: ArenaStore) -> None:
    battles = make_round(store)
    judgments = store.judgments_of(b.battle_id for b in battles)
    for flt in FILTERS:
        want = expected(battles, flt, judgments)
        forward, backward = all_pages(store, flt, limit=7)
        assert forward == want, flt
        assert backward == want, flt
        first = data.battle_page(store, "r1", flt, limit=7, count=True)
        if not flt.needs_judgments:
            assert first.total == len(want), flt
    assert expected(battles, BattleFilter(disagreement=True), judgments)  # never vacuous
    assert expected(battles, BattleFilter(outcome="b"), judgments)


def test_a_lost_battle_with_local_score_zero_is_listed(store: ArenaStore) -> None:
    # proto3 does not store a score of 0: the filter must still find the battle.
    battle = arena_pb2.RatedBattle(battle_id="b0", round_id="r1", model_a="x", model_b="y",
                                   status=arena_pb2.BATTLE_STATUS_RATED, local_score_a=0.0)
    store.save_battles([battle])
    assert "local_score_a" not in store.db["battles"].find_one({"_id": "b0"})
    page = data.battle_page(store, "r1", BattleFilter(outcome="b"))
    assert [r.battle.battle_id for r in page.rows] == ["b0"]
    assert page.rows[0].outcome == "b"
    assert data.battle_page(store, "r1", BattleFilter(model="y", outcome="won"),
                            count=True).total == 1


def test_a_judgment_filter_stops_at_the_scan_limit_and_goes_on_from_there(
    store: ArenaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    battles = make_round(store)
    judgments = store.judgments_of(b.battle_id for b in battles)
    flt = BattleFilter(contradiction=True, judge="m0")
    want = expected(battles, flt, judgments)
    monkeypatch.setattr(data, "SCAN_LIMIT", 10)
    monkeypatch.setattr(data, "SCAN_CHUNK", 4)
    page = data.battle_page(store, "r1", flt, limit=50)
    assert page.scan_stopped and page.scanned == 10 and page.total is None
    assert page.next_after is not None
    forward, backward = all_pages(store, flt, limit=50)
    assert forward == want and backward == want and want


def test_bad_query_parameters_are_named() -> None:
    with pytest.raises(FilterError, match="outcome: 'best'"):
        BattleFilter.from_query({"outcome": "best"})
    with pytest.raises(FilterError, match="outcome: 'won' needs a model"):
        BattleFilter.from_query({"outcome": "won"})
    with pytest.raises(FilterError, match=r"model: .* is not an id"):
        BattleFilter.from_query({"model": '"><script>'})
    with pytest.raises(FilterError, match="contradiction: expected 1 or 0"):
        BattleFilter.from_query({"contradiction": "maybe"})
    flt = BattleFilter.from_query({"model": "m1", "outcome": "won", "disagreement": "1"})
    assert BattleFilter.from_query(flt.query_string()) == flt


def test_battle_detail_reads_judges_in_both_orders_and_flags_the_contradiction(
    tmp_path: Path,
) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    battles = make_round(store, n=6)
    contradicted = battles[1]  # i % 3 == 1
    detail = data.battle_detail(store, contradicted.battle_id, None, ExportIndex(None))
    assert detail is not None
    rows = {r.judge: r for r in detail.judges}
    first = contradicted.votes[0].judge
    assert rows[first].contradicted and rows[first].ab is not None and rows[first].ba is not None
    assert not any(r.contradicted for j, r in rows.items() if j != first)
    assert detail.export.selection is None and "config" in detail.export.note
    assert data.battle_detail(store, "missing", None, ExportIndex(None)) is None


def _config() -> object:
    return parse_config({"round_id": "r1", "roster": [
        {"id": m, "backend": "fake", "model": "fake"} for m in ("a", "b", "c")]})


def _rated(bid: str, a: str, b: str, score: float, votes: tuple[int, int, int] = (1, 0, 0),
           ) -> arena_pb2.RatedBattle:
    return arena_pb2.RatedBattle(battle_id=bid, challenge_id="c1", round_id="r1", model_a=a,
                                 model_b=b, status=arena_pb2.BATTLE_STATUS_RATED,
                                 local_score_a=score, votes_a=votes[0], votes_b=votes[1],
                                 ties=votes[2], tokens_a=10, tokens_b=10)


def test_selection_reasons_name_the_guard_and_the_margin() -> None:
    config = _config()
    board = arena_pb2.Leaderboard(round_id="r1")
    for model, rating in (("a", 1000.0), ("b", 1300.0), ("c", 900.0)):
        board.ratings.add(model_id=model, bradley_terry=rating)
    # b is rated far higher, but lost to a by a unanimous vote: a is exported.
    battles = [_rated("x1", "a", "b", 1.0), _rated("x2", "a", "c", 0.5, (0, 0, 1)),
               _rated("x3", "b", "c", 1.0)]
    selection = explain_selection(config, battles, board,  # type: ignore[arg-type]
                                  {"a": "1", "b": "2", "c": "3"})
    assert selection is not None
    text = " ".join(selection.reasons)
    assert selection.outcome.winner == "a"
    assert "Lost a head-to-head by a unanimous vote: b" in text
    assert "a is exported although b scored higher" in text
    assert selection.preference and "Preference pair: a chosen over c" in text
    # Same text for winner and loser: no pair, and the page says why.
    same = explain_selection(config, battles, board,  # type: ignore[arg-type]
                             {"a": "same", "b": "2", "c": "same"})
    assert same is not None and not same.preference
    assert "same text" in " ".join(same.reasons)


def test_written_records_are_read_from_the_newest_manifest(tmp_path: Path) -> None:
    old, new = tmp_path / "export" / "v1", tmp_path / "export" / "v2"
    for folder, model in ((old, "a"), (new, "b")):
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps(
            {"dataset_id": folder.name, "files": {"sft": "sft.jsonl"}}))
        (folder / "sft.jsonl").write_text(json.dumps({
            "id": "c1/sft", "messages": [{"role": "user", "content": "q"},
                                         {"role": "assistant", "content": "x"}],
            "model": model, "score": 0.7, "provenance": {"challenge_id": "c1"}}) + "\n"
            + "not json\n")
    import os
    os.utime(old / "manifest.json", (1, 1))
    files = read_export(tmp_path / "export")
    assert files is not None and files.records["c1"].sft_model == "b"
    assert "dataset version v2" in files.label
    assert files.problems and files.problems[0].startswith("sft.jsonl:2:")
    assert read_export(tmp_path / "nothing") is None


PAYLOADS = ('<script>document.title="pwned"</script>',
            '<img src=x onerror="document.title=\'pwned\'">',
            '<a href="javascript:document.title=\'pwned\'">click</a>')


def test_model_text_is_escaped_and_code_highlighted() -> None:
    text = "\n".join([*PAYLOADS, "```python", "def f():", f"    return '{PAYLOADS[0]}'", "```",
                      "after"])
    html = str(answer_html(text))
    for payload in PAYLOADS:
        assert payload not in html
    assert "<script" not in html and "<img" not in html and "<a " not in html
    assert "&lt;script&gt;" in html and 'class="hl"' in html
    assert '<span class="k">def</span>' in html
    assert [s.code for s in segments(text)] == [False, True, False]


def test_hostile_text_is_cut_and_long_fence_lines_are_prose() -> None:
    html = str(answer_html("x" * (MAX_CHARS + 10)))
    assert "cut at" in html
    backticks = "`" * 100_000
    assert segments(backticks + "\n~~~") == [Segment(backticks, False), Segment("", True, "")]


def test_the_rater_serves_the_viewer_over_mongodb_on_its_own_port(
    mongo_uri: str, tmp_path: Path
) -> None:
    import asyncio

    import aiohttp
    import yaml
    from conftest import free_port

    from warriorcoder.config import load_config
    from warriorcoder.service.settings import ServiceSettings
    from warriorcoder.viewer.service import start_service_viewer

    database = f"v{uuid.uuid4().hex[:12]}"
    store = ArenaStore.connect(mongo_uri, database=database)
    battles = make_round(store, n=12)
    arena = tmp_path / "arena.yaml"
    arena.write_text(yaml.safe_dump({"round_id": "r1", "roster": [
        {"id": m, "backend": "fake", "model": "fake"} for m in MODELS]}))
    port = free_port()
    settings = ServiceSettings(arena_config=arena, mongo_uri=mongo_uri,  # type: ignore[arg-type]
                               mongo_database=database, viewer_port=port)

    async def scenario() -> None:
        stop = start_service_viewer(settings, load_config(arena), store)
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # it starts in the background
                try:
                    async with http.get(f"http://127.0.0.1:{port}/") as response:
                        body = await response.text()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            assert "Round r1" in body  # the config's round, straight away
            async with http.get(f"http://127.0.0.1:{port}/rounds/r1/battles") as response:
                listing = await response.text()
            assert listing.count('class="battle outcome-') == len(battles)
            assert f"MongoDB database {database}" in listing
            async with http.post(f"http://127.0.0.1:{port}/rounds/r1/battles") as response:
                assert response.status == 405
        await stop()
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.get(f"http://127.0.0.1:{port}/")

    asyncio.run(scenario())


def test_the_round_page_shows_the_season_board_when_one_is_stored(tmp_path: Path) -> None:
    from warriorcoder.viewer.server import Viewer, ViewerSource

    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    make_round(store, n=6)
    board = arena_pb2.Leaderboard(round_id="r1", arena="main", battles=5)
    board.ratings.add(model_id="m0", bradley_terry=1010, bradley_terry_lower=900,
                      upper_unbounded=True, bradley_terry_upper=float("inf"))
    store.save_leaderboard(board)
    viewer = Viewer(ViewerSource(open_store=lambda: store))
    template = viewer.env.get_template("round.html")

    def render() -> str:
        summary = data.round_summary(store, "r1", ExportIndex(None))
        return template.render(title="t", round_id="r1", s=summary, live="")

    assert 'id="season-ratings"' not in render()
    season = arena_pb2.Leaderboard(arena="main", season=True, rounds=["r0", "r1"], battles=40)
    season.ratings.add(model_id="m3", bradley_terry=1100)
    store.save_season_leaderboard(season)
    html = render()
    assert 'id="season-ratings"' in html and "Season of arena main" in html and "r0, r1" in html
    assert "[900, +∞]" in html  # the round board's open upper side
    viewer.close()


def test_the_live_token_changes_with_the_round(store: ArenaStore) -> None:
    battles = make_round(store, n=6)
    bid = battles[0].battle_id
    round_token, battle_token = data.live_token(store, "r1"), data.live_token(store, "r1", bid)
    assert data.live_token(store, "r1") == round_token  # nothing written: no reload
    if store.data_version() is not None:
        # The embedded store's version moves only with another connection's commits.
        ArenaStore.open_embedded(Path(store.db.db_path)).save_battles(
            [arena_pb2.RatedBattle(battle_id="zzz", round_id="r1")])
    else:
        store.save_battles([arena_pb2.RatedBattle(battle_id="zzz", round_id="r1")])
    assert data.live_token(store, "r1") != round_token
    if store.data_version() is None:
        battle_token = data.live_token(store, "r1", bid)
        store.save_judgments([_judgment(bid, "m9", AB, A)])
        assert data.live_token(store, "r1", bid) != battle_token
