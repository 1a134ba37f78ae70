"""The outside world: Kafka (the embedded broker, connections, topics, producers, the topic follower), files
(replay through column mappings, logger exports) and the alert printer."""
