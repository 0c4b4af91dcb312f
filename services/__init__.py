"""The runnable processes and their wiring: CLI, replay, matcher, API server, simulator."""
