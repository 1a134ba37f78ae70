"""Apache Kafka: the embedded KRaft broker, connection settings, topics, producers and the topic follower."""
