"""Prometheus metrics of `finetext serve`, served at GET /metrics.

Each app has its own CollectorRegistry (tests build several apps in one process). With --workers N the server sets
PROMETHEUS_MULTIPROC_DIR for its workers, and /metrics then adds up the counters and histograms of every worker
(whichever worker answers the scrape), sums the texts waiting over the live workers and gives each worker's model
load time with its pid.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from finetext.serving.observe import Observation

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
ROUTES = frozenset({"/predict", "/health", "/ready", "/info", "/metrics", "/openapi.json", "/docs", "/redoc"})
"""Paths counted under their own name; any other counts as "other" (label values stay few, whatever is asked)."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("finetext_requests", "HTTP requests answered, by route and status.",
                                ["route", "status"], registry=registry)
        self.latency = Histogram("finetext_request_duration_seconds", "Time to answer a request, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_texts = Histogram("finetext_batch_texts", "Texts per forward pass of the model.",
                                     buckets=BATCH_BUCKETS, registry=registry)
        self.pending_texts = Gauge("finetext_pending_texts", "Texts waiting for the model.",
                                   multiprocess_mode="livesum", registry=registry)
        self.model_load_seconds = Gauge("finetext_model_load_seconds",
                                        "Seconds taken to load the model (and pick its backend and precision).",
                                        multiprocess_mode="liveall", registry=registry)

    def observe(self, observation: Observation) -> None:
        route = observation.path if observation.path in ROUTES else "other"
        self.requests.labels(route, str(observation.status)).inc()
        self.latency.labels(route).observe(observation.seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type: this process's registry, or every worker's."""
        if not os.environ.get(MULTIPROCESS_ENV):
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return generate_latest(combined), CONTENT_TYPE_LATEST

    def worker_exited(self) -> None:
        """Drop this worker's live gauges (its counters stay in the totals)."""
        if os.environ.get(MULTIPROCESS_ENV):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())
