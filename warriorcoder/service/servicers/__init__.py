"""The gRPC APIs of the five services, one module each, a thin layer over its stage.

Servicers check their requests, call the stage, and raise `InvalidArgument` / `NotFound` /
`NotReady` for the error interceptor of `service.grpc_server` to turn into statuses. None of
them knows Kafka: the challenger gets a `publish` callable (the Kafka producer in a service, a
list's append in tests). Store calls and long computations run off the event loop
(`ArenaStore.call`), so one slow RPC never stalls the others or the service's stage loop.

An empty `round_id` in any request means the round of the arena config the service runs with.
"""
