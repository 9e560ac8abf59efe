"""Kafka transport of the distributed services: `topics` (creation, partition keys),
`producer` (acknowledged publishing), `stage_loop` (poll -> handle -> produce -> commit)."""
