"""sluicegate: an event gateway over one durable, partitioned log."""

__version__ = "0.1.0"
