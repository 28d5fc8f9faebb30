"""Helpers for testing against a real sluicegate: a server in a subprocess."""
