"""One schema registry for Avro and JSON Schema, with Confluent's ids, subjects and wire format."""
