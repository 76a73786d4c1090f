"""Request counters and latency histograms in the Prometheus text format (``GET /metrics``).

Counted per process: with ``--workers N`` each scrape reaches one worker at random, so the
counters of a multi-worker server are one worker's, not the sum (scrape with one worker, or
read the access log). Routes
are labelled by their template (``/v1/concepts/{name}``), never by the concept name or
anything a user sent, so the label set stays small and the page leaks no names.

Example:
    >>> m = Metrics()
    >>> m.observe("GET", "/healthz", 200, 0.002)
    >>> 'route="/healthz",status="200"} 1' in m.render()
    True
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

__all__ = ["BUCKETS", "Metrics"]

#: Upper bounds (seconds) of the latency histogram buckets.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters: requests by method/route/status, latency by route, and gauges
    read at render time (``gauges``: name -> (help, callable))."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)
        self._count: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, tuple[str, str, Callable[[], float]]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, int(status))] += 1
            counts = self._buckets.setdefault(route, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            self._sum[route] += seconds
            self._count[route] += 1

    def gauge(self, name: str, help_text: str, read: Callable[[], float], *, kind: str = "gauge") -> None:
        """Expose ``read()`` as ``name`` (a ``gauge`` or, for a monotonic count, a ``counter``)."""
        self.gauges[name] = (help_text, kind, read)

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        lines = ["# HELP pekit_http_requests_total Requests served, by method, route template and status.",
                 "# TYPE pekit_http_requests_total counter"]
        with self._lock:
            for (method, route, status), n in sorted(self._requests.items()):
                lines.append(f'pekit_http_requests_total{{method="{method}",route="{_label(route)}",'
                             f'status="{status}"}} {n}')
            lines += ["# HELP pekit_http_request_duration_seconds Time to serve a request, by route template.",
                      "# TYPE pekit_http_request_duration_seconds histogram"]
            for route in sorted(self._buckets):
                r = _label(route)
                for bound, n in zip(BUCKETS, self._buckets[route], strict=True):
                    lines.append(f'pekit_http_request_duration_seconds_bucket{{route="{r}",le="{bound}"}} {n}')
                lines.append(f'pekit_http_request_duration_seconds_bucket{{route="{r}",le="+Inf"}} '
                             f"{self._count[route]}")
                lines.append(f'pekit_http_request_duration_seconds_sum{{route="{r}"}} {self._sum[route]:.6f}')
                lines.append(f'pekit_http_request_duration_seconds_count{{route="{r}"}} {self._count[route]}')
        for name, (help_text, kind, read) in sorted(self.gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {float(read()):g}"]
        return "\n".join(lines) + "\n"
