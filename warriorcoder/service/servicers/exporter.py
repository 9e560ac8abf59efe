"""ExporterServicer: StreamRecords, WriteExport."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
from typing import TypeVar

from warriorcoder.arena.training_record import KINDS
from warriorcoder.config import ArenaConfig
from warriorcoder.exports.folder import (
    BadExportPath,
    ExportPathError,
    ExportRoot,
    FolderBusy,
)
from warriorcoder.service.grpc_server import InvalidArgument, NotFound, NotReady, PermissionDenied
from warriorcoder.service.servicers.checks import Context
from warriorcoder.stages.exporter import Export, Exporter, ExportScope
from warriorcoder.stages.rater import Rater
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc

T = TypeVar("T")

# Records handed from the export thread to the RPC at a time (bounds what waits in memory).
_STREAM_BATCH = 256


def _checked_kinds(kind: str) -> tuple[str, ...]:
    if not kind:
        return KINDS
    if kind not in KINDS:
        raise InvalidArgument(f"kind must be 'sft', 'preference' or empty (both), got {kind!r}")
    return (kind,)


class ExporterServicer(services_grpc.ExporterServicer):
    """StreamRecords streams an export's training records; WriteExport writes its files.

    An export covers one round (`round_id`, default the configured round) or, with `season`,
    every round of an arena. Records are selected under the rater's stored leaderboard when
    it matches the battles stored now, otherwise one computed now (`Rater`). The export runs
    on a worker thread and streams (stages.exporter): the event loop, and so health checks,
    stay free while a large round is exported. WriteExport writes only under `export_root`
    (exports.folder): a path outside it, through a symbolic link or over files the exporter
    did not write is PERMISSION_DENIED.
    """

    def __init__(
        self,
        config: ArenaConfig,
        store: ArenaStore,
        exporter: Exporter,
        *,
        export_root: ExportRoot | Path,
        rater: Rater | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.exporter = exporter
        self.rater = rater if rater is not None else Rater(config, store)
        self.export_root = (export_root if isinstance(export_root, ExportRoot)
                            else ExportRoot(export_root))

    def _leaderboard(self, request: services_pb2.ExportRequest) -> arena_pb2.Leaderboard:
        """The leaderboard records are selected by (blocking: reads the store)."""
        if request.season:
            arena = request.arena or self.config.arena
            season = self.rater.season_leaderboard(arena)
            if season is None:
                raise NotFound(f"arena {arena!r} has no battles (unknown arena, or none rated "
                               "yet)")
            return season
        round_id = request.round_id or self.config.round_id
        board = self.rater.current_leaderboard(round_id)
        if board is None:
            raise NotFound(f"round {round_id!r} has no battles (unknown round, or none rated yet)")
        return board

    async def _run(self, work: Callable[[], T]) -> T:
        """Blocking export work off the event loop: on a worker thread for MongoDB, inline for
        an embedded store (its connection belongs to its thread; tests only)."""
        return await self.store.call(work)

    async def StreamRecords(
        self, request: services_pb2.ExportRequest, context: Context
    ) -> AsyncIterator[arena_pb2.TrainingRecord]:
        """SFT records, then preference records (or only the requested kind), streamed as the
        export produces them."""
        kinds = _checked_kinds(request.kind)
        board = await self._run(lambda: self._leaderboard(request))
        records = self.exporter.stream(ExportScope.of(board), board, kinds)
        if not self.store.threadsafe:
            for record in records:
                yield record
            return
        async for batch in _batches_from_thread(records):
            for record in batch:
                yield record

    async def WriteExport(
        self, request: services_pb2.ExportRequest, context: Context
    ) -> services_pb2.ExportSummary:
        """Write sft.jsonl, preference.jsonl, the leaderboard files and manifest.json into
        output_dir, a folder under the export root.

        Every file is written whatever `kind` says (it is checked, for the same errors as
        StreamRecords); the summary counts both kinds.
        """
        _checked_kinds(request.kind)
        try:
            self.export_root.parts(request.output_dir)  # a bad path fails before any work
        except BadExportPath as error:
            raise InvalidArgument(str(error)) from None
        except ExportPathError as error:
            raise PermissionDenied(str(error)) from None
        board = await self._run(lambda: self._leaderboard(request))
        export = await self._run(lambda: self._write(request.output_dir, board))
        return services_pb2.ExportSummary(
            sft_records=export.sft_records,
            preference_records=export.preference_records,
            files=[str(f) for f in export.files],
            manifest=str(export.files[-1]),
            dataset_id=export.dataset_id,
            duplicates=export.duplicates,
            skipped=export.skipped,
            rounds=[r["round_id"] for r in export.manifest["rounds"]],
        )

    def _write(self, output_dir: str, board: arena_pb2.Leaderboard) -> Export:
        try:
            with self.export_root.open(output_dir) as folder:
                return self.exporter.write(ExportScope.of(board), board, folder)
        except BadExportPath as error:
            raise InvalidArgument(str(error)) from None
        except FolderBusy as error:
            raise NotReady(str(error)) from None
        except ExportPathError as error:
            raise PermissionDenied(str(error)) from None
        except PermissionError as error:
            raise PermissionDenied(f"output_dir {output_dir!r}: cannot write: "
                                   f"{error.strerror or error}") from None


class _Cancelled(Exception):
    """The RPC stopped reading: the export thread stops."""


async def _batches_from_thread(
    records: Generator[arena_pb2.TrainingRecord, None, None],
) -> AsyncIterator[list[arena_pb2.TrainingRecord]]:
    """Drain `records` on a worker thread, handing batches to the event loop; at most a few
    batches wait at once (back pressure), and a consumer that stops stops the thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[arena_pb2.TrainingRecord] | BaseException | None] = (
        asyncio.Queue())
    slots = threading.Semaphore(4)
    cancelled = threading.Event()

    def put(item: list[arena_pb2.TrainingRecord] | BaseException | None) -> None:
        while not slots.acquire(timeout=0.1):
            if cancelled.is_set():
                raise _Cancelled
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def produce() -> None:
        try:
            batch: list[arena_pb2.TrainingRecord] = []
            for record in records:
                if cancelled.is_set():
                    return
                batch.append(record)
                if len(batch) >= _STREAM_BATCH:
                    put(batch)
                    batch = []
            if batch:
                put(batch)
            put(None)
        except _Cancelled:
            return
        except BaseException as error:  # noqa: BLE001 - handed to the RPC, which raises it
            if not cancelled.is_set():
                with contextlib.suppress(_Cancelled, RuntimeError):  # RuntimeError: loop closed
                    put(error)
        finally:
            records.close()  # removes the export's scratch table

    worker = asyncio.ensure_future(asyncio.to_thread(produce))
    try:
        while (item := await queue.get()) is not None:
            slots.release()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
        if worker.done():
            worker.result()
