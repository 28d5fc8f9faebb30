"""Authentication (API keys, JWT, TLS client certificates) and per-topic authorization."""
