"""The five arena stages: pure arena logic wired to models and the store.

Each stage is transport-free: it takes events and returns events. The embedded run passes them
over an in-memory bus; the distributed services pass the same events over Kafka.
"""
