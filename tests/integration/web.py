"""A live worker's web endpoints: plain GETs and /metrics as a dict of samples."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of ``GET http://127.0.0.1:{port}{path}``; (0, "") while nothing listens."""

    def call() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""  # not listening yet

    return await asyncio.to_thread(call)


async def scrape(port: int) -> Samples:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    status, text = await get(port, "/metrics")
    assert status == 200, f"/metrics answered {status}"
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter not incremented yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
