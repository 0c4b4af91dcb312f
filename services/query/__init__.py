"""Answers served to many readers: version-checked caches, presence snapshots, the event feed."""
