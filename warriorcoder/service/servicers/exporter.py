"""ExporterServicer: StreamRecords, WriteExport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from warriorcoder.arena.training_record import KINDS
from warriorcoder.config import ArenaConfig
from warriorcoder.service.grpc_server import InvalidArgument, NotFound
from warriorcoder.service.servicers.checks import Context
from warriorcoder.stages.exporter import Exporter
from warriorcoder.stages.rater import Rater
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc


def _checked_kinds(kind: str) -> tuple[str, ...]:
    if not kind:
        return KINDS
    if kind not in KINDS:
        raise InvalidArgument(f"kind must be 'sft', 'preference' or empty (both), got {kind!r}")
    return (kind,)


class ExporterServicer(services_grpc.ExporterServicer):
    """StreamRecords streams a round's training records; WriteExport writes the dataset files.

    Both use the rater's stored leaderboard when it was computed from the battles stored now,
    and otherwise one computed now and not saved (`Rater.current_leaderboard`): records follow
    the newest ratings, and the rater service stays the only writer of leaderboards. Store
    reads and file writes run off the event loop (`ArenaStore.call`).
    `export_root`, when given, confines WriteExport's output_dir to that folder.
    """

    def __init__(
        self,
        config: ArenaConfig,
        store: ArenaStore,
        exporter: Exporter,
        *,
        rater: Rater | None = None,
        export_root: Path | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.exporter = exporter
        self.rater = rater if rater is not None else Rater(config, store)
        self.export_root = export_root.resolve() if export_root is not None else None

    def _leaderboard(self, round_id: str) -> arena_pb2.Leaderboard:
        """The leaderboard records are selected by (blocking: reads the round's battles)."""
        round_id = round_id or self.config.round_id
        board = self.rater.current_leaderboard(round_id)
        if board is None:
            raise NotFound(f"round {round_id!r} has no battles (unknown round, or none rated yet)")
        return board

    def _records(self, round_id: str) -> dict[str, Iterable[arena_pb2.TrainingRecord]]:
        sft, preference = self.exporter.records(self._leaderboard(round_id))
        return {"sft": sft, "preference": preference}

    async def StreamRecords(
        self, request: services_pb2.ExportRequest, context: Context
    ) -> AsyncIterator[arena_pb2.TrainingRecord]:
        """SFT records, then preference records (or only the requested kind)."""
        kinds = _checked_kinds(request.kind)
        records = await self.store.call(self._records, request.round_id)
        for kind in kinds:
            for record in records[kind]:
                yield record

    async def WriteExport(
        self, request: services_pb2.ExportRequest, context: Context
    ) -> services_pb2.ExportSummary:
        """Write sft.jsonl, preference.jsonl and the leaderboard files into output_dir.

        Every file is written whatever `kind` says (it is checked, for the same errors as
        StreamRecords); the summary counts both kinds.
        """
        _checked_kinds(request.kind)
        if not request.output_dir.strip():
            raise InvalidArgument("output_dir is required (a folder on the exporter's machine)")
        out_dir = Path(request.output_dir).expanduser().resolve()
        if self.export_root is not None and not out_dir.is_relative_to(self.export_root):
            raise InvalidArgument(
                f"output_dir {request.output_dir!r} is outside the export root {self.export_root}"
            )
        board = await self.store.call(self._leaderboard, request.round_id)
        try:
            export = await self.store.call(self.exporter.export, board, out_dir)
        except (PermissionError, NotADirectoryError, FileExistsError) as error:
            message = f"output_dir {request.output_dir!r}: cannot write: {error}"
            raise InvalidArgument(message) from error
        return services_pb2.ExportSummary(
            sft_records=len(export.sft),
            preference_records=len(export.preference),
            files=[str(f) for f in export.files],
        )
