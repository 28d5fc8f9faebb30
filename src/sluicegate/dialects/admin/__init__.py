"""The admin API for clients and API keys (``/admin/v1/clients``), used by the CLI."""
