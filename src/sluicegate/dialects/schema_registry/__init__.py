"""A Confluent-Schema-Registry-compatible REST API over the gateway's schema registry."""
