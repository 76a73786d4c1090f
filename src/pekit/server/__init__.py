"""The HTTP service (``pekit serve``) and its web page: the library's verbs per user, by API key.

    pekit keys create alice                 # prints a key once; stored hashed
    pekit serve                             # 127.0.0.1:8080, embedded memory
    curl -H "Authorization: Bearer pk_..." http://127.0.0.1:8080/v1/concepts

Modules: `app` (`create_app`), `routes` (the ``/v1`` verbs), `keys` (hashed API keys),
`limits` (upload limits, type sniffing), `queue` (bounded backbone pool), `middleware`
(request ids, body limit, access log), `metrics` (Prometheus text), `errors` (JSON
errors), `cli` (``pekit serve`` and ``pekit keys``). Needs ``pip install 'pekit-vlm[server]'``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """`pekit.server.app.create_app` (imported on call: FastAPI loads only when a server is made)."""
    from pekit.errors import require

    require("fastapi", "server")
    require("multipart", "server", "python-multipart")
    from pekit.server.app import create_app as make

    return make(*args, **kwargs)
