"""The gateway's own topic admin API (``/admin/v1/topics``), used by the CLI."""
