"""`create_app`: the FastAPI application of ``pekit serve``.

One process holds one `Personalizer` (models loaded once, at start-up) and serves every
user through ``for_namespace``; the memory store (embedded SQLite file or PostgreSQL) is
shared by all worker processes, and so is the key file.

Example:
    >>> from fastapi.testclient import TestClient                     # doctest: +SKIP
    >>> app = create_app(memory="memory://", keys=":memory:")         # doctest: +SKIP
    >>> token = app.state.service.keys.create("alice")                # doctest: +SKIP
    >>> with TestClient(app) as client:                               # doctest: +SKIP
    ...     client.get("/v1/concepts", headers={"Authorization": f"Bearer {token}"}).json()
    []
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from pekit import __version__
from pekit.server.errors import install_error_handlers
from pekit.server.keys import KeyStore, keys_path_for, memory_file_for
from pekit.server.limits import Limits
from pekit.server.metrics import Metrics
from pekit.server.middleware import ServiceMiddleware
from pekit.server.queue import BoundedExecutor
from pekit.server.routes import router
from pekit.server.schemas import Health
from pekit.server.service import Service

__all__ = ["CONFIG_ENV", "create_app", "create_app_from_env", "keys_path_for", "memory_file_for"]

#: Environment variable through which `pekit serve --workers N` hands its options to each worker.
CONFIG_ENV = "PEKIT_SERVE_CONFIG"

log = logging.getLogger(__name__)

#: where /docs gets Swagger UI's script and stylesheet (`_offline_docs`)
DOCS_ASSETS = "/docs-assets"
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def create_app(personalizer: Any = None, *, memory: Any = None, keys: KeyStore | str | os.PathLike[str] | None = None,
               preset: str = "offline", lvlm: Any = None, limits: Limits | None = None, workers: int = 1,
               queue: int = 8, retry_after: int = 2, warm: bool = True, **overrides: Any) -> FastAPI:
    """The pekit HTTP service as a FastAPI app (run it with uvicorn, or `pekit serve`).

    Args:
        personalizer: a ready `Personalizer` (its models and store are used as they are);
            default: ``Personalizer(preset, memory=memory, lvlm=lvlm, **overrides)``.
        memory: memory URI or store, when no ``personalizer`` is given.
        keys: a `KeyStore` or its file (default: `keys_path_for` the memory).
        preset, lvlm, overrides: for the default `Personalizer`.
        limits: upload limits (`Limits`).
        workers: threads running backbone work.
        queue: backbone calls that may wait; one more gets 503 with ``Retry-After``.
        retry_after: the seconds that header says.
        warm: load the models at start-up (else on first use).
    """
    if personalizer is None:
        from pekit.personalizer import Personalizer

        personalizer = Personalizer(preset, memory=memory, lvlm=lvlm, **overrides)
    if not isinstance(keys, KeyStore):
        keys = KeyStore(keys if keys is not None else keys_path_for(personalizer.memory.uri))
    svc = Service(personalizer=personalizer, keys=keys,
                  pool=BoundedExecutor(workers=workers, queue=queue, retry_after=retry_after),
                  limits=limits or Limits(), metrics=Metrics())
    pool = svc.pool
    svc.metrics.gauge("pekit_backbone_admitted", "Backbone calls running or waiting now.", lambda: pool.admitted)
    svc.metrics.gauge("pekit_backbone_capacity", "Backbone calls admitted at most (workers + queue).",
                      lambda: pool.workers + pool.queue)
    svc.metrics.gauge("pekit_backbone_refused_total", "Backbone calls refused with 503 since start.",
                      lambda: pool.refused, kind="counter")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm:
            await asyncio.to_thread(svc.warm)
        yield
        await asyncio.to_thread(svc.close)

    assets = _swagger_assets()
    app = FastAPI(title="pekit", version=__version__, lifespan=lifespan, redoc_url=None,
                  docs_url=None if assets is not None else "/docs",
                  description="Personal concepts per user (API key): introduce them from photos, then find "
                              "them in new photos and ask an LVLM about them by name. Web page at /.")
    app.state.service = svc
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(ServiceMiddleware, limits=svc.limits, metrics=svc.metrics, user=svc.user)

    @app.get("/healthz", response_model=Health, summary="liveness: the process serves requests")
    def healthz() -> Health:
        return Health(status="ok", version=__version__)

    app.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)  # uptime probes ask with HEAD

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics of this process")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4")

    static = resources.files("pekit.server") / "static"

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html", headers=_PAGE_HEADERS)

    app.add_api_route("/", page, methods=["HEAD"], include_in_schema=False)

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    if assets is not None:
        _offline_docs(app, assets)
    return app


def _swagger_assets() -> Path | None:
    """Swagger UI's script and stylesheet as shipped by ``fastapi-offline`` (the ``server``
    extra), or None when it is not installed (``/docs`` then loads them from FastAPI's CDN)."""
    try:
        folder = Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        log.info("fastapi-offline is not installed: /docs loads Swagger UI from a CDN "
                 "(pip install 'pekit-vlm[server]' serves it from this process)")
        return None
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _offline_docs(app: FastAPI, assets: Path) -> None:
    """``/docs``: Swagger UI with its script, stylesheet and icon served by this process,
    so the OpenAPI reference works on a machine with no internet."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title="pekit API",
                                   swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/static/icon.svg")


def create_app_from_env() -> FastAPI:
    """`create_app` with the options `pekit serve` put in ``$PEKIT_SERVE_CONFIG`` (one per worker)."""
    options = json.loads(os.environ.get(CONFIG_ENV, "{}"))
    limits = options.pop("limits", None)
    if options.pop("log", False):  # a worker process starts with no logging set up
        from pekit.server.context import configure_logging

        configure_logging()
    return create_app(limits=Limits(**limits) if limits else None, **options)
