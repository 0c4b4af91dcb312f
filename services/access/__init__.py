"""Who may do what: API keys, roles, and the `hotspots keys` command."""
