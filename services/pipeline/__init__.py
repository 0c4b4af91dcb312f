"""The matcher process and what it owns: the commit order, the dead-letter topic, the broker, and
the seams the matcher is written against, with in-memory twins for in-process tests."""
