"""/readyz as an orchestrator reads it: a store that keeps failing checkpoints is not ready."""

from __future__ import annotations

from pathlib import Path

from support.api import serve_api

from api.routes.health import CHECKPOINT_FAILURES_UNREADY
from services.store import database_url


async def test_readyz_store_failing_every_checkpoint_answers_503_naming_it(tmp_path: Path) -> None:
    async with serve_api(database_url(None, tmp_path)) as api:
        api.ctx.matcher_running = True
        api.ctx.health.broker = api.ctx.health.assigned = True
        assert (await api.client.get("/readyz")).status_code == 200
        api.ctx.health.checkpoint_failures = CHECKPOINT_FAILURES_UNREADY
        api.ctx.health.error = "store: DataError: invalid byte sequence for encoding UTF8: 0x00"
        response = await api.client.get("/readyz")
        assert response.status_code == 503
        checks = {"store": True, "broker": True, "consumer_assigned": True, "checkpoints": False}
        assert response.json()["checks"] == checks
        assert "0x00" in response.json()["error"]
