"""Serve an ASGI app (a fake provider, the simulator, a callback receiver) on a real uvicorn
server on a free 127.0.0.1 port, inside the running test loop.

    async with serve(app) as url:  # "http://127.0.0.1:54321"
        ...

The listening socket is bound here (port 0) and handed to uvicorn, so the port cannot be
taken by someone else between choosing it and listening on it. For an address where
nothing listens, use ``tests.support.common.free_port()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # several servers in one test process: leave SIGINT alone
        yield


@contextlib.asynccontextmanager
async def serve(
    app: Any, host: str = "127.0.0.1", *, lifespan: str = "off", **config: Any
) -> AsyncIterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``https://`` when
    ``ssl_certfile`` is among the ``config`` keywords, which go to ``uvicorn.Config``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    scheme = "https" if config.get("ssl_certfile") else "http"
    url = f"{scheme}://{host}:{sock.getsockname()[1]}"
    server = _Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan=lifespan,
            access_log=False,
            timeout_graceful_shutdown=1,
            **config,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                task.result()  # startup failed: raise why
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("uvicorn did not start")
    except BaseException:
        task.cancel()
        sock.close()
        raise
    try:
        yield url
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
