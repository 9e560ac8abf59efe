"""Generated protobuf and gRPC code for the warriorcoder.v1 schema (make protos)."""
