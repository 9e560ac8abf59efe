"""Exporter: training records (SFT and preference pairs) and leaderboard files from the rated
battles; consumes `battles` to count them, serves StreamRecords and WriteExport (into folders
under the export root, settings.export_root)."""

from warriorcoder.exports.folder import ExportRoot
from warriorcoder.service.runner import ServiceContext, ServiceParts
from warriorcoder.service.servicers.exporter import ExporterServicer
from warriorcoder.stages.bus import Topic
from warriorcoder.stages.exporter import Exporter
from warriorcoder.v1 import arena_pb2, services_pb2_grpc


def build(ctx: ServiceContext) -> ServiceParts:
    async def handle(battles: list[arena_pb2.RatedBattle]) -> list[arena_pb2.RatedBattle]:
        ctx.metrics.record_battles(battles)
        return []

    servicer = ExporterServicer(ctx.config, ctx.store, Exporter(ctx.config, ctx.store),
                                export_root=ExportRoot(ctx.settings.export_root))
    return ServiceParts(
        servicers=[(services_pb2_grpc.add_ExporterServicer_to_server, servicer)],
        service_names=["warriorcoder.v1.Exporter"],
        loop=ctx.stage_loop(Topic.BATTLES, arena_pb2.RatedBattle, None, handle),
    )
