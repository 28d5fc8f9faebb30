"""Limits that keep one client from starving the others: rates, concurrency, JSON shape."""
