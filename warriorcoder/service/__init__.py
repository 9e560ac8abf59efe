"""The plumbing every distributed service shares: settings (`settings`), the Kafka transport
(`kafka/`), error classification (`errors`), the gRPC server (`grpc_server`) and the five gRPC
APIs (`servicers/`), metrics (`metrics`) and the process (`runner`). Each service in
warriorcoder/services/ only wires its stage into it."""
