"""The matcher process and what it owns: the broker, the commit order, the dead-letter topic."""
