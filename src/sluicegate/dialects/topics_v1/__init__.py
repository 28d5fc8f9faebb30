"""Topics v1: Workato Event Streams' public API (publish, batch publish, cursor consume)
and developer API (topic admin), on the gateway's log."""
