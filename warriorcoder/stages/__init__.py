"""The five arena stages: pure arena logic wired to models and the store.

Each stage is transport-free: it takes events and returns events. The embedded run
(`embedded`) passes them over an in-memory bus (`bus`, which also names the topics); the
distributed services (warriorcoder/services/) pass the same events over Kafka. Both keep several
batches of a stage in flight with one scheduler (`scheduling`). A rule that
both runs need lives here, never in a service.
"""
