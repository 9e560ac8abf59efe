"""The store runs the same code on the embedded SQLite file and on the MongoDB wire protocol."""

from __future__ import annotations

import uuid
from pathlib import Path

from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2


def _battle(battle_id: str, score: float = 0.75) -> arena_pb2.RatedBattle:
    return arena_pb2.RatedBattle(
        battle_id=battle_id, challenge_id="c1", round_id="r1", model_a="a", model_b="b",
        votes=[arena_pb2.Vote(judge="j", verdict=arena_pb2.VERDICT_A)],
        votes_a=1, local_score_a=score, status=arena_pb2.BATTLE_STATUS_RATED,
    )


def test_roundtrip_messages(store: ArenaStore) -> None:
    c = arena_pb2.Challenge(challenge_id="c1", round_id="r1", instruction="Write x",
                            attacker="a", defenders=["b", "c"], source="mined")
    store.save_challenges([c])
    assert store.challenges("r1") == [c]
    assert store.challenge("c1") == c
    assert store.challenge("nope") is None
    generation = arena_pb2.Generation(text="def x(): pass", completion_tokens=5)
    r = arena_pb2.Response(challenge_id="c1", model_id="a", generation=generation)
    store.save_response(r)
    assert store.response("c1", "a") == r
    assert store.responses("c1") == [r]
    b = _battle("b1")
    store.save_battle(b)
    assert store.battle("b1") == b
    assert store.battles("r1") == [b]


def test_writing_twice_changes_nothing(store: ArenaStore) -> None:
    for _ in range(3):
        store.save_battle(_battle("b1"))
        store.save_judgment(arena_pb2.Judgment(
            judgment_id="j1", battle_id="b1", judge="c", order=arena_pb2.ORDER_AB,
            verdict=arena_pb2.VERDICT_B))
    assert store.count("battles") == 1
    assert store.count("judgments") == 1
    store.save_battle(_battle("b1", score=0.25))  # an update replaces, never duplicates
    assert [b.local_score_a for b in store.battles("r1")] == [0.25]


def test_judgments_by_id_finds_what_judgments_of_finds(store: ArenaStore) -> None:
    made = [arena_pb2.Judgment(judgment_id=f"j{n}", battle_id=f"b{n % 3}", judge=f"judge{n}",
                               order=arena_pb2.ORDER_AB, verdict=arena_pb2.VERDICT_A)
            for n in range(7)]
    store.save_judgments(made)
    found = store.judgments_by_id(["j1", "j4", "j6", "missing", "j1"])
    assert found == {"j1": made[1], "j4": made[4], "j6": made[6]}
    by_battle = store.judgments_of(["b1", "b0"])
    assert by_battle["b1"] == [made[1], made[4]]
    assert store.judgments_by_id(j.judgment_id for j in by_battle["b0"]) == {
        j.judgment_id: j for j in made if j.battle_id == "b0"}


def test_round_info_merges(store: ArenaStore) -> None:
    store.save_round_info("r1", config_hash="abc")
    store.save_round_info("r1", challenges_ready=True)
    info = store.round_info("r1")
    # SQLite keeps bools as 1.
    assert info is not None and info["config_hash"] == "abc" and bool(info["challenges_ready"])
    assert store.round_info("r2") is None


def test_embedded_store_survives_reopen(tmp_path: Path) -> None:
    ArenaStore.open_embedded(tmp_path / "a.db").save_battle(_battle("b1"))
    assert ArenaStore.open_embedded(tmp_path / "a.db").battle_ids("r1") == {"b1"}


def test_connect_bounds_server_selection_unless_the_uri_sets_it(mongo_uri: str) -> None:
    from warriorcoder.storage.store import DEFAULT_SERVER_SELECTION_TIMEOUT_MS

    default = ArenaStore.connect(mongo_uri, f"t{uuid.uuid4().hex[:8]}")
    assert default.db.client.options.server_selection_timeout == (
        DEFAULT_SERVER_SELECTION_TIMEOUT_MS / 1000)
    assert "?" not in mongo_uri
    chosen = ArenaStore.connect(f"{mongo_uri.rstrip('/')}/?serverSelectionTimeoutMS=2500",
                                f"t{uuid.uuid4().hex[:8]}")
    assert chosen.db.client.options.server_selection_timeout == 2.5


def test_call_runs_mongodb_methods_off_the_event_loop_and_embedded_ones_inline(
    store: ArenaStore,
) -> None:
    import asyncio
    import threading

    def which_thread() -> int:
        return threading.get_ident()

    async def scenario() -> tuple[int, int]:
        return threading.get_ident(), await store.call(which_thread)

    loop_thread, method_thread = asyncio.run(scenario())
    is_mongo = type(store.db).__module__.startswith("pymongo")
    assert (method_thread != loop_thread) == is_mongo
