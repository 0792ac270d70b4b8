"""Prometheus metrics of one server (its own registry, exposed over HTTP when asked)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["Metrics"]


class Metrics:
    """Active streams, frames sent, streams ended by a diverged model, batch sizes and step
    latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.active = Gauge(
            "seqboltz_active_streams", "streams being generated", registry=self.registry
        )
        self.frames = Counter("seqboltz_frames", "frames sent to clients", registry=self.registry)
        self.diverged = Counter(
            "seqboltz_diverged_streams",
            "streams ended because the model produced a NaN or infinite frame",
            ["model"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "seqboltz_batch_size",
            "steps per runtime call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "seqboltz_step_seconds",
            "seconds per batched runtime call",
            buckets=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0),
            registry=self.registry,
        )

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.step_seconds.observe(seconds)

    def serve_http(self, port: int, addr: str = "127.0.0.1") -> int:
        """Expose ``/metrics`` on ``addr:port`` (0: a free port); returns the port.

        Raises:
            OSError: the port cannot be bound (taken, or not allowed).
        """
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return int(server.server_port)
