"""The five arena services. Each module is a thin `build(context)` that wires one stage into
the shared skeleton in warriorcoder/service/ (Kafka loop, gRPC, metrics, shutdown)."""
