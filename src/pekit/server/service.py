"""What one server process holds: the models (one `Personalizer`), the keys, the worker pool.

Per request, `Service.user` checks the API key and `Service.personalizer_for` gives the
key's owner a `Personalizer.for_namespace` sibling: same models, same store, every read
and write filtered on the owner's namespace by the store itself. The namespace comes only
from the key, never from the request.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pekit.server.keys import ApiKey, KeyStore
from pekit.server.limits import Limits
from pekit.server.metrics import Metrics
from pekit.server.queue import BoundedExecutor

__all__ = ["Service", "jpeg_data_url"]


@dataclass
class Service:
    personalizer: Any
    keys: KeyStore
    pool: BoundedExecutor
    limits: Limits = field(default_factory=Limits)
    metrics: Metrics = field(default_factory=Metrics)

    def user(self, token: str | None) -> ApiKey:
        """The key's record (`AuthError` when missing, wrong or revoked)."""
        if not token:
            from pekit.server.keys import UnknownKeyError

            raise UnknownKeyError("this route needs an API key: send 'Authorization: Bearer pk_...' "
                                  "(create one with `pekit keys create USER`)")
        return self.keys.verify(token)

    def personalizer_for(self, key: ApiKey) -> Any:
        return self.personalizer.for_namespace(key.namespace)

    def warm(self) -> None:
        """Load the models now (once per process), not on the first request."""
        _ = self.personalizer.pipeline
        _ = self.personalizer.lvlm

    def close(self) -> None:
        self.pool.close()
        self.keys.close()
        self.personalizer.close()


def jpeg_data_url(image: np.ndarray, *, quality: int = 85) -> str:
    """``(H, W, 3) uint8`` -> ``data:image/jpeg;base64,...`` (what an ``<img src>`` shows)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
