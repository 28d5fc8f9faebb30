"""Records v2: the Kafka-style REST producer of IBM Event Streams (REST Producer v2)."""
