"""Versioned, streamed, confined exports: manifest.json, one record per instruction across the
rounds of a season, battles that cannot be exported skipped with a reason, files that load with
`datasets` and TRL (a kind with no records has no file), and WriteExport confined to its export
root through the real gRPC server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import grpc
import pytest
from test_backends_transformers import build_tiny_model
from test_grpc_servicers import make_config
from transformers import AutoTokenizer
from trl.data_utils import apply_chat_template, is_conversational

from warriorcoder.arena.training_record import record_from_json
from warriorcoder.exports.folder import ExportRoot, NotOwned, OutsideExportRoot
from warriorcoder.exports.manifest import check_ownership
from warriorcoder.service.grpc_server import build_server
from warriorcoder.service.servicers.exporter import ExporterServicer
from warriorcoder.stages.exporter import Exporter, ExportScope
from warriorcoder.storage.store import ArenaStore
from warriorcoder.training.records import export_manifest, find_data_file
from warriorcoder.training.settings import TrainingError
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc

MODELS = ("alpha", "beta", "gamma")
RATED = arena_pb2.BATTLE_STATUS_RATED


def seed_round(store: ArenaStore, round_id: str, instructions: list[str], *,
               score_a: float = 1.0, prefix: str = "") -> list[str]:
    """Challenges (alpha attacks beta and gamma), their answers and rated battles; alpha wins
    each battle with `score_a`. Returns the challenge ids."""
    ids = []
    for n, text in enumerate(instructions):
        cid = f"{prefix or round_id}-c{n:03d}"
        ids.append(cid)
        store.save_challenges([arena_pb2.Challenge(
            challenge_id=cid, round_id=round_id, instruction=text, attacker="alpha",
            defenders=["beta", "gamma"])])
        store.save_responses(arena_pb2.Response(
            challenge_id=cid, model_id=m,
            generation=arena_pb2.Generation(model_id=m, text=f"{m} answers {cid}",
                                            completion_tokens=5)) for m in MODELS)
        store.save_battles(arena_pb2.RatedBattle(
            battle_id=f"{cid}-{d}", challenge_id=cid, round_id=round_id, model_a="alpha",
            model_b=d, status=RATED, local_score_a=score_a, tokens_a=5, tokens_b=5)
            for d in ("beta", "gamma"))
    return ids


def board(round_id: str = "t1", *, season: list[str] | None = None) -> arena_pb2.Leaderboard:
    """Ratings the export selects by (alpha strongest)."""
    b = arena_pb2.Leaderboard(round_id="" if season else round_id, season=bool(season),
                              arena="default" if season else "", rounds=season or [round_id])
    for m, r in zip(MODELS, (1100.0, 1000.0, 900.0), strict=True):
        b.ratings.add(model_id=m, bradley_terry=r, elo=r, battles=2)
    return b


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ArenaStore:
    return ArenaStore.open_embedded(tmp_path / "arena.db")


# -- manifest, skipped battles, dedup -------------------------------------------------------------


def test_manifest_records_scope_counts_experts_judges_and_checksums(
        store: ArenaStore, tmp_path: Path) -> None:
    config = make_config()
    seed_round(store, "t1", ["Sort a list.", "Reverse a string.", "Sum an array."])
    store.save_round_info("t1", config_hash=config.config_hash())
    b = board()
    b.judges.add(judge="gamma", consistency=1.0)
    export = Exporter(config, store).export(b, tmp_path / "out")
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == export.manifest
    assert manifest["format"] == "warriorcoder.export/1"
    assert manifest["scope"] == "round:t1" and manifest["season"] is False
    assert manifest["config_hash"] == config.config_hash()
    assert manifest["rounds"] == [{"round_id": "t1", "battles": 6, "rated_battles": 6,
                                   "challenges": 3, "config_hash": config.config_hash()}]
    assert [e["id"] for e in manifest["experts"]] == list(MODELS)
    assert all(len(e["version"]) == 16 for e in manifest["experts"])
    assert manifest["counts"]["sft_records"] == 3 == export.sft_records
    assert manifest["counts"]["preference_records"] == 3  # alpha beat gamma by a margin
    assert manifest["judges"][0]["judge"] == "gamma"
    assert manifest["skipped"] == {"total": 0, "by_code": {}, "listed": []}
    files = {f["name"]: f for f in manifest["files"]}
    assert set(files) == {"sft.jsonl", "preference.jsonl", "leaderboard.json",
                          "leaderboard.md", "leaderboard.png"}
    for name, entry in files.items():
        assert entry["sha256"] == sha256(out / name)
        assert entry["bytes"] == (out / name).stat().st_size
    assert files["sft.jsonl"]["records"] == 3
    # Same data, same dataset id; the records are the winners' answers.
    again = Exporter(config, store).export(b, tmp_path / "out")
    assert again.dataset_id == export.dataset_id
    assert [r["model"] for r in jsonl(out / "sft.jsonl")] == ["alpha"] * 3


def test_battles_that_cannot_be_exported_are_skipped_with_reasons(
        store: ArenaStore, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config()
    good = seed_round(store, "t1", ["Sort a list.", "Reverse a string.", "Sum an array."])
    # A crafted battle of a challenge the store does not hold (once: INTERNAL for the round).
    store.save_battles([arena_pb2.RatedBattle(
        battle_id="ghost-b", challenge_id="ghost", round_id="t1", model_a="alpha",
        model_b="beta", status=RATED, local_score_a=1.0)])
    # A challenge of another round, claimed by a battle of t1.
    seed_round(store, "t0", ["Other round."], prefix="t0")
    store.save_battles([arena_pb2.RatedBattle(
        battle_id="stray-b", challenge_id="t0-c000", round_id="t1", model_a="alpha",
        model_b="beta", status=RATED, local_score_a=1.0)])
    # An answer missing, and a model the leaderboard does not rate.
    store.db["responses"].delete_one({"_id": f"{good[1]}/alpha"})
    store.save_battles([arena_pb2.RatedBattle(
        battle_id="zeta-b", challenge_id=good[2], round_id="t1", model_a="alpha",
        model_b="zeta", status=RATED, local_score_a=1.0)])
    with caplog.at_level(logging.WARNING, logger="warriorcoder.stages.exporter"):
        export = Exporter(config, store).export(board(), tmp_path / "out")
    assert export.sft_records == 1
    assert [r["id"] for r in jsonl(tmp_path / "out" / "sft.jsonl")] == [f"{good[0]}/sft"]
    skipped = export.manifest["skipped"]
    assert skipped["total"] == export.skipped == 4
    assert skipped["by_code"] == {"missing_answer": 1, "unknown_challenge": 1,
                                  "unrated_model": 1, "wrong_round": 1}
    reasons = {s["challenge_id"]: s["reason"] for s in skipped["listed"]}
    assert "challenge ghost, which the store does not hold" in reasons["ghost"]
    assert "belongs to round 't0', not 't1'" in reasons["t0-c000"]
    assert "no stored answer of alpha" in reasons[good[1]]
    assert "zeta have no rating" in reasons[good[2]]
    assert {s["battle_ids"][0] for s in skipped["listed"]} >= {"ghost-b", "stray-b"}
    for challenge_id in reasons:
        assert any(challenge_id in r.getMessage() for r in caplog.records)


def test_a_season_keeps_one_record_per_instruction_the_best_across_rounds(
        store: ArenaStore, tmp_path: Path) -> None:
    config = make_config()
    seed_round(store, "r1", ["Sort a list.", "Only in round one."], score_a=0.6)
    # The same task again (whitespace differs), answered more decisively in round two.
    seed_round(store, "r2", ["Sort   a list.\n", "Only in round two."], score_a=1.0)
    store.save_round_info("r1", config_hash="r1-config")  # round one ran another config
    b = board(season=["r1", "r2"])
    exporter = Exporter(config, store, chunk_challenges=1)  # several chunks per round
    export = exporter.export(b, tmp_path / "season")
    assert export.manifest["scope"] == "season:default"
    assert [r["round_id"] for r in export.manifest["rounds"]] == ["r1", "r2"]
    assert export.duplicates == export.manifest["counts"]["duplicates"] == 1
    rows = jsonl(tmp_path / "season" / "sft.jsonl")
    assert [r["provenance"]["challenge_id"] for r in rows] == ["r1-c001", "r2-c000", "r2-c001"]
    # The kept record of the shared instruction is round two's: its winner scored higher.
    sort = rows[1]
    assert sort["provenance"]["round_id"] == "r2"
    # Each record carries the config hash of the round it came from.
    assert [r["provenance"]["config_hash"] for r in rows] == [
        "r1-config", config.config_hash(), config.config_hash()]
    assert [r["config_hash"] for r in export.manifest["rounds"]] == [
        "r1-config", config.config_hash()]
    assert sort["score"] > 0.8
    streamed = list(exporter.stream(ExportScope.of(b), b))
    assert [r.record_id for r in streamed if r.kind == "sft"] == [r["id"] for r in rows]


# -- files that load, empty kinds ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return AutoTokenizer.from_pretrained(str(build_tiny_model(tmp_path_factory.mktemp("tok"))))


def test_every_written_file_loads_with_datasets_and_trl(store: ArenaStore, tmp_path: Path,
                                                        tokenizer: Any) -> None:
    seed_round(store, "t1", ["Sort a list.", "Reverse a string."])
    Exporter(make_config(), store).export(board(), tmp_path / "out")
    for name, kind in (("sft.jsonl", "sft"), ("preference.jsonl", "preference")):
        path = tmp_path / "out" / name
        ds = datasets.load_dataset("json", data_files=str(path), split="train",
                                   cache_dir=str(tmp_path / "hf"))
        assert len(ds) == 2
        row = ds[0]
        assert is_conversational(row)
        rendered = apply_chat_template(row, tokenizer)
        assert rendered  # TRL renders the row with the model's chat template
        if kind == "sft":
            assert "alpha answers" in rendered["text"]
        else:
            assert "alpha answers" in rendered["chosen"]
        # And the file reads back into the record schema training uses.
        assert record_from_json(json.loads(path.read_text().splitlines()[0]), kind)


def test_a_kind_with_no_records_has_no_file_and_the_manifest_says_why(
        store: ArenaStore, tmp_path: Path) -> None:
    config = make_config()
    seed_round(store, "t1", ["Sort a list."])
    out = tmp_path / "out"
    first = Exporter(config, store).export(board(), out)
    assert first.preference_records == 1 and (out / "preference.jsonl").is_file()
    # Every answer now ties: no preference pair (and the old file must go, not linger).
    store.save_battles(arena_pb2.RatedBattle(
        battle_id=f"t1-c000-{d}", challenge_id="t1-c000", round_id="t1", model_a="alpha",
        model_b=d, status=RATED, local_score_a=0.5, tokens_a=5, tokens_b=5)
        for d in ("beta", "gamma"))
    flat = board()
    for r in flat.ratings:
        r.bradley_terry = 1000.0
    export = Exporter(config, store).export(flat, out)
    assert export.preference_records == 0
    assert not (out / "preference.jsonl").exists()
    assert "preference.jsonl" in export.manifest["empty"]
    assert "preference.jsonl" not in {f["name"] for f in export.manifest["files"]}
    ds = datasets.load_dataset("json", data_files=str(out / "sft.jsonl"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 1
    # Training on the missing kind says why, instead of a bare error from `datasets`.
    with pytest.raises(TrainingError, match="has no preference pairs"):
        find_data_file(out, "dpo")
    reference = export_manifest(find_data_file(out, "sft"))
    assert reference is not None and reference["matches_data"] is True
    assert reference["dataset_id"] == export.dataset_id and reference["scope"] == "round:t1"


# -- the export root and ownership ----------------------------------------------------------


def test_folders_outside_the_root_or_through_links_are_refused(tmp_path: Path) -> None:
    root = ExportRoot(tmp_path / "root")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root" / "link").symlink_to(outside)
    for requested, words in (("../outside", "contains '..'"),
                             ("a/../../outside", "contains '..'"),
                             (str(outside), "outside the export root"),
                             ("link", "is a symbolic link"),
                             ("link/deeper", "is a symbolic link")):
        with pytest.raises(OutsideExportRoot, match=words):
            root.open(requested).close()
    assert list(outside.iterdir()) == []
    with root.open(str(tmp_path / "root" / "a" / "b")) as folder:
        assert folder.path == (tmp_path / "root" / "a" / "b").resolve()


def test_files_the_exporter_did_not_write_are_never_overwritten(
        store: ArenaStore, tmp_path: Path) -> None:
    config = make_config()
    seed_round(store, "t1", ["Sort a list."])
    seed_round(store, "t2", ["Other."])
    root = ExportRoot(tmp_path / "root")
    exporter = Exporter(config, store)

    def write(requested: str, b: arena_pb2.Leaderboard) -> None:
        with root.open(requested) as folder:
            exporter.write(ExportScope.of(b), b, folder)

    mine = tmp_path / "root" / "mine"
    mine.mkdir(parents=True)
    (mine / "sft.jsonl").write_text("my own data\n")
    with pytest.raises(NotOwned, match="no export manifest says the exporter wrote them"):
        write("mine", board())
    assert (mine / "sft.jsonl").read_text() == "my own data\n"

    write("t1", board())  # a fresh folder; writing it again is fine
    write("t1", board())
    with pytest.raises(NotOwned, match="holds the export of 'round:t1', not 'round:t2'"):
        write("t1", board("t2"))
    sft = tmp_path / "root" / "t1" / "sft.jsonl"
    sft.write_text(sft.read_text() + "\n")  # edited after the export
    with pytest.raises(NotOwned, match="changed since the exporter wrote it"):
        write("t1", board())
    # A link planted where a file will be written is not followed.
    target = tmp_path / "victim.txt"
    target.write_text("keep me")
    (tmp_path / "root" / "planted").mkdir()
    (tmp_path / "root" / "planted" / "leaderboard.md").symlink_to(target)
    with pytest.raises(NotOwned):
        write("planted", board())
    assert target.read_text() == "keep me"


def test_an_export_cut_off_while_replacing_files_can_be_redone(
        store: ArenaStore, tmp_path: Path) -> None:
    """The manifest lists old and new checksums before files move: a crash in between leaves
    a folder the next export still owns."""
    config = make_config()
    seed_round(store, "t1", ["Sort a list."])
    out = tmp_path / "out"
    Exporter(config, store).export(board(), out)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "sft.jsonl").write_text("the new bytes\n")  # moved before the crash
    manifest["files"].append({"name": "sft.jsonl", "sha256": sha256(out / "sft.jsonl"),
                              "bytes": 14})
    (out / "manifest.json").write_text(json.dumps(manifest))
    with ExportRoot(tmp_path).open("out") as folder:
        assert "sft.jsonl" in check_ownership(folder, "round:t1")


# -- through the real gRPC server ---------------------------------------------------------------


def serve_exporter(tmp_path: Path, store: ArenaStore) -> Any:
    config = make_config()
    servicer = ExporterServicer(config, store, Exporter(config, store),
                                export_root=tmp_path / "exports")

    async def start() -> tuple[grpc.aio.Server, int]:
        server, _, port = await build_server(
            "127.0.0.1", 0, [(services_grpc.add_ExporterServicer_to_server, servicer)],
            ["warriorcoder.v1.Exporter"])
        return server, port

    return start


def test_write_export_refusals_and_skips_through_the_grpc_server(
        store: ArenaStore, tmp_path: Path) -> None:
    seed_round(store, "t1", ["Sort a list.", "Reverse a string."])
    store.save_battles([arena_pb2.RatedBattle(
        battle_id="ghost-b", challenge_id="ghost", round_id="t1", model_a="alpha",
        model_b="beta", status=RATED, local_score_a=1.0)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "sft.jsonl").write_text("not yours\n")
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "escape").symlink_to(elsewhere)
    (tmp_path / "exports" / "taken").mkdir()
    (tmp_path / "exports" / "taken" / "sft.jsonl").write_text("not yours either\n")
    start = serve_exporter(tmp_path, store)
    EX = services_pb2.ExportRequest

    async def main() -> None:
        server, port = await start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = services_grpc.ExporterStub(channel)
                for request, code, words in (
                        (EX(output_dir=""), grpc.StatusCode.INVALID_ARGUMENT,
                         "output_dir is required"),
                        (EX(output_dir="a\x00b"), grpc.StatusCode.INVALID_ARGUMENT, "NUL"),
                        (EX(output_dir="."), grpc.StatusCode.INVALID_ARGUMENT,
                         "the export root itself"),
                        (EX(output_dir="../elsewhere"), grpc.StatusCode.PERMISSION_DENIED,
                         "contains '..'"),
                        (EX(output_dir=str(elsewhere)), grpc.StatusCode.PERMISSION_DENIED,
                         "outside the export root"),
                        (EX(output_dir="escape"), grpc.StatusCode.PERMISSION_DENIED,
                         "symbolic link"),
                        (EX(output_dir="taken"), grpc.StatusCode.PERMISSION_DENIED,
                         "no export manifest says the exporter wrote them")):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.WriteExport(request)
                    assert err.value.code() == code, (request, err.value.details())
                    assert words in (err.value.details() or ""), err.value.details()
                summary = await stub.WriteExport(EX(output_dir="round-1"))
                assert (summary.sft_records, summary.skipped, list(summary.rounds)) == (
                    2, 1, ["t1"])
                manifest = json.loads(Path(summary.manifest).read_text())
                assert manifest["dataset_id"] == summary.dataset_id
                assert manifest["skipped"]["listed"][0]["code"] == "unknown_challenge"
                assert Path(summary.manifest).parent == tmp_path / "exports" / "round-1"
        finally:
            await server.stop(None)

    asyncio.run(asyncio.wait_for(main(), 60))
    assert (elsewhere / "sft.jsonl").read_text() == "not yours\n"
    assert (tmp_path / "exports" / "taken" / "sft.jsonl").read_text() == "not yours either\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["sft.jsonl"]


def test_a_season_export_through_the_grpc_server(store: ArenaStore, tmp_path: Path) -> None:
    seed_round(store, "r1", ["Sort a list.", "Only in round one."], score_a=0.6)
    seed_round(store, "r2", ["Sort a list.", "Only in round two."], score_a=1.0)
    for round_id in ("r1", "r2"):
        store.register_round(round_id, "default")
    start = serve_exporter(tmp_path, store)

    async def main() -> None:
        server, port = await start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = services_grpc.ExporterStub(channel)
                summary = await stub.WriteExport(services_pb2.ExportRequest(
                    season=True, output_dir="season"))
                assert list(summary.rounds) == ["r1", "r2"]
                assert (summary.sft_records, summary.duplicates) == (3, 1)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.WriteExport(services_pb2.ExportRequest(
                        season=True, arena="nope", output_dir="other"))
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
                # A round's export may not land in the season's folder.
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.WriteExport(services_pb2.ExportRequest(
                        round_id="r1", output_dir="season"))
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "season:default" in (err.value.details() or "")
        finally:
            await server.stop(None)

    asyncio.run(asyncio.wait_for(main(), 60))
    manifest = json.loads((tmp_path / "exports" / "season" / "manifest.json").read_text())
    assert manifest["scope"] == "season:default" and manifest["season"] is True


def test_health_stays_serving_while_a_big_round_exports(tmp_path: Path, mongo_uri: str) -> None:
    """A round of 3,000 battles exported through WriteExport on MongoDB (the wire server), with
    the health service probed all along: every probe answers SERVING."""
    import uuid

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    store = ArenaStore.connect(mongo_uri, f"exp{uuid.uuid4().hex[:8]}")
    seed_many(store, "t1", challenges=1500)
    config = make_config()
    servicer = ExporterServicer(config, store, Exporter(config, store),
                                export_root=tmp_path / "exports")

    async def main() -> None:
        server, _, port = await build_server(
            "127.0.0.1", 0, [(services_grpc.add_ExporterServicer_to_server, servicer)],
            ["warriorcoder.v1.Exporter"])
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                export = asyncio.ensure_future(services_grpc.ExporterStub(channel).WriteExport(
                    services_pb2.ExportRequest(output_dir="big"), timeout=600))
                health = health_pb2_grpc.HealthStub(channel)
                statuses = []
                while not export.done():
                    reply = await health.Check(health_pb2.HealthCheckRequest(
                        service="warriorcoder.v1.Exporter"), timeout=5)
                    statuses.append(reply.status)
                    await asyncio.sleep(0.2)
                summary = await export
                assert summary.sft_records == 1500
                # StreamRecords hands the same records over from its worker thread.
                streamed = [r async for r in services_grpc.ExporterStub(channel).StreamRecords(
                    services_pb2.ExportRequest(), timeout=600)]
                written = jsonl(tmp_path / "exports" / "big" / "sft.jsonl")
                assert [r.record_id for r in streamed if r.kind == "sft"] == [
                    r["id"] for r in written]
                assert len(streamed) == summary.sft_records + summary.preference_records
                print(f"health probes during the export: {len(statuses)}")
                assert len(statuses) >= 3  # probed while the export ran
                assert set(statuses) == {health_pb2.HealthCheckResponse.SERVING}
        finally:
            await server.stop(None)

    asyncio.run(asyncio.wait_for(main(), 900))


def seed_many(store: ArenaStore, round_id: str, *, challenges: int) -> None:
    """`challenges` challenges with two rated battles each, written in bulk."""
    def chunks() -> Iterator[range]:
        for start in range(0, challenges, 500):
            yield range(start, min(start + 500, challenges))

    for ids in chunks():
        cids = [f"{round_id}-c{n:06d}" for n in ids]
        store.save_challenges(arena_pb2.Challenge(
            challenge_id=cid, round_id=round_id, instruction=f"Task number {cid}.",
            attacker="alpha", defenders=["beta", "gamma"]) for cid in cids)
        store.save_responses(arena_pb2.Response(
            challenge_id=cid, model_id=m, generation=arena_pb2.Generation(
                model_id=m, text=f"{m} answers {cid}", completion_tokens=5))
            for cid in cids for m in MODELS)
        store.save_battles(arena_pb2.RatedBattle(
            battle_id=f"{cid}-{d}", challenge_id=cid, round_id=round_id, model_a="alpha",
            model_b=d, status=RATED, local_score_a=1.0 if d == "gamma" else 0.75,
            tokens_a=5, tokens_b=5) for cid in cids for d in ("beta", "gamma"))


# -- `warriorcoder export --run-dir` ----------------------------------------------------------


def test_cli_exports_a_run_folders_round_and_season(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from test_pipeline import make_config as pipeline_config
    from test_pipeline import run as run_round

    from warriorcoder.cli import main

    run_dir = tmp_path / "run"
    first = run_round(pipeline_config(round_id="r1"), run_dir)
    second = run_round(pipeline_config(round_id="r2"), run_dir)
    assert main(["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "r1"),
                 "--round-id", "r1"]) == 0
    assert f"{first.export.sft_records} SFT records" in capsys.readouterr().out
    assert main(["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "season"),
                 "--season"]) == 0
    printed = capsys.readouterr().out
    assert "(rounds: r1, r2)" in printed
    manifest = json.loads((tmp_path / "season" / "manifest.json").read_text())
    assert manifest["scope"] == "season:default"
    counts = manifest["counts"]
    # Both rounds mine from the same fakes: repeated instructions are kept once, the best.
    assert counts["sft_records"] + counts["duplicates"] == (
        first.export.sft_records + second.export.sft_records)
    rows = jsonl(tmp_path / "season" / "sft.jsonl")
    keys = [" ".join(r["messages"][-2]["content"].split()) for r in rows]
    assert len(keys) == len(set(keys)) == counts["sft_records"]
    # The round's export folder is not the season's: refused, nothing overwritten.
    before = (tmp_path / "r1" / "sft.jsonl").read_bytes()
    assert main(["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "r1"),
                 "--season"]) == 1
    assert "holds the export of 'round:r1'" in capsys.readouterr().err
    assert (tmp_path / "r1" / "sft.jsonl").read_bytes() == before
    assert main(["export", "--out", "x"]) == 2


def test_a_file_where_a_folder_should_be_and_a_busy_folder(tmp_path: Path) -> None:
    from warriorcoder.exports.folder import BadExportPath, FolderBusy

    root = ExportRoot(tmp_path / "root")
    (tmp_path / "root" / "plain").write_text("x")
    with pytest.raises(BadExportPath, match="is a file, not a folder"):
        root.open("plain/sub").close()
    # Two exports into one folder at once: the second is told to wait.
    with root.open("busy") as first, root.open("busy") as second:
        first.lock()
        with pytest.raises(FolderBusy, match="another export is writing this folder"):
            second.lock()


def test_a_first_export_cut_off_half_way_can_be_redone(
        store: ArenaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after some files moved into a fresh folder leaves a pending manifest that
    vouches for them: the next export of the same scope goes through."""
    from warriorcoder.exports import folder as folder_module

    config = make_config()
    seed_round(store, "t1", ["Sort a list."])
    moved: list[str] = []
    commit = folder_module.AtomicFile.commit

    def crash_after_two(self: Any) -> Any:
        if self.name != "manifest.json" and len(moved) == 2:
            raise OSError("simulated crash")
        moved.append(self.name)
        return commit(self)

    monkeypatch.setattr(folder_module.AtomicFile, "commit", crash_after_two)
    root = ExportRoot(tmp_path)
    with root.open("out") as folder, pytest.raises(OSError, match="simulated crash"):
        Exporter(config, store).write(ExportScope(("t1",)), board(), folder)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["pending"] is True
    assert (tmp_path / "out" / "sft.jsonl").exists()
    assert not list((tmp_path / "out").glob(".*.partial"))  # no temporary file left
    monkeypatch.setattr(folder_module.AtomicFile, "commit", commit)
    with root.open("out") as folder:
        export = Exporter(config, store).write(ExportScope(("t1",)), board(), folder)
    assert "pending" not in export.manifest and export.sft_records == 1
