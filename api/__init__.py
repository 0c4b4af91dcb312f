"""FastAPI routers and schemas of the query layer."""
