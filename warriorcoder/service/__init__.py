"""The plumbing every distributed service shares: settings, the Kafka processing loop, the gRPC
server, metrics. Each service in services/ only wires its stage into it."""
