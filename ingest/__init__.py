"""Reading pings and fences from the outside world: files, HTTP bodies, Kafka messages."""
