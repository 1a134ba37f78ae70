"""The worker 工作进程: the engine on Kafka — Faust agents, ingestion into typed events and dead letters,
checkpoints and restore of detector state, reference tables, metrics."""
