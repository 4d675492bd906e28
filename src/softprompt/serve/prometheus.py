"""Prometheus metrics of one engine (its own registry, so several servers can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.queue = Gauge("softprompt_queue_depth", "requests waiting for a slot", registry=r)
        self.running = Gauge("softprompt_running_rows", "generation rows being decoded", registry=r)
        self.batch = Histogram("softprompt_batch_size", "rows per forward", buckets=SIZES, registry=r)
        self.latency = Histogram(
            "softprompt_request_latency_seconds", "submission to last token", buckets=LATENCY, registry=r
        )
        self.ttft = Histogram(
            "softprompt_time_to_first_token_seconds", "submission to first token", buckets=LATENCY, registry=r
        )
        self.tokens = Counter("softprompt_generated_tokens", "tokens generated", registry=r)
        self.tokens_per_s = Gauge("softprompt_tokens_per_second", "tokens/s over the last step", registry=r)
        self.requests = Counter(
            "softprompt_requests", "requests finished", ["prompt", "kind", "status"], registry=r
        )

    def text(self) -> bytes:
        return generate_latest(self.registry)
