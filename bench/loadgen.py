"""An open-loop HTTP load generator for signed Twilio webhooks (asyncio and aiohttp).

Request ``i`` is due at ``start + i / rate`` whether or not earlier requests have finished, so a
slow server builds a queue instead of slowing the generator down. Latency is measured from the
due time, which counts time spent waiting for a free connection as well. A run sends at most
``count`` requests, schedules none after ``max_seconds``, and gives each request
``timeout_seconds`` to finish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from bench.stack import summarize_ms

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignedPost:
    """A form POST with the ``X-Twilio-Signature`` that Twilio would send for it."""

    url: str
    form: dict[str, str]
    headers: dict[str, str]


def signed_post(url: str, form: dict[str, str], auth_token: str) -> SignedPost:
    """Sign ``form`` for ``url`` with HMAC-SHA1, as Twilio signs webhooks."""
    signature = RequestValidator(auth_token).compute_signature(url, form)
    return SignedPost(url, form, {"X-Twilio-Signature": signature})


@dataclass
class Exchange:
    """One request and its response; times are ``time.monotonic()`` seconds."""

    due: float
    sent: float = 0.0
    done: float = 0.0
    status: int | None = None
    error: str | None = None
    body: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def latency_ms(self) -> float:
        return (self.done - self.due) * 1000

    @property
    def service_ms(self) -> float:
        return (self.done - self.sent) * 1000


@dataclass
class Sample:
    """A scheduled request, and the follow-up request sent once it succeeded, if any."""

    index: int
    first: Exchange
    follow_up: Exchange | None = None


@dataclass
class LoadResult:
    samples: list[Sample]
    rate: float
    started: float
    finished: float
    scheduled_until: float = 0.0
    notes: list[str] = field(default_factory=list)


FollowUp = Callable[[int, Exchange], SignedPost | None]


def run_open_loop(
    make_request: Callable[[int], SignedPost], *, rate: float, count: int, max_seconds: float,
    timeout_seconds: float = 10.0, max_connections: int = 200, keep_body: bool = False,
    follow_up: FollowUp | None = None,
) -> LoadResult:
    """Send ``count`` requests at ``rate`` per second and return every exchange.

    ``follow_up``, when given, is called with each successful first exchange and may return a
    second request, which is sent at once on the same connection pool.
    """
    return asyncio.run(_run(make_request, rate=rate, count=count, max_seconds=max_seconds,
                            timeout_seconds=timeout_seconds, max_connections=max_connections,
                            keep_body=keep_body or follow_up is not None, follow_up=follow_up))


async def _run(
    make_request: Callable[[int], SignedPost], *, rate: float, count: int, max_seconds: float,
    timeout_seconds: float, max_connections: int, keep_body: bool, follow_up: FollowUp | None,
) -> LoadResult:
    connector = aiohttp.TCPConnector(limit=max_connections)
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    samples: list[Sample] = []
    tasks: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.monotonic() + 0.05
        stop_scheduling = start + max_seconds
        for index in range(count):
            due = start + index / rate
            if due > stop_scheduling:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sample = Sample(index, Exchange(due=due))
            samples.append(sample)
            tasks.append(asyncio.create_task(
                _exchange(session, sample, make_request, keep_body, follow_up)))
        scheduled_until = time.monotonic()
        await asyncio.gather(*tasks)
    return LoadResult(samples, rate, start, time.monotonic(), scheduled_until)


async def _exchange(
    session: aiohttp.ClientSession, sample: Sample, make_request: Callable[[int], SignedPost],
    keep_body: bool, follow_up: FollowUp | None,
) -> None:
    await _send(session, make_request(sample.index), sample.first, keep_body)
    if follow_up is None or not sample.first.ok:
        return

    second = follow_up(sample.index, sample.first)
    if second is None:
        return
    sample.follow_up = Exchange(due=time.monotonic())
    await _send(session, second, sample.follow_up, keep_body)


async def _send(
    session: aiohttp.ClientSession, request: SignedPost, exchange: Exchange, keep_body: bool
) -> None:
    exchange.sent = time.monotonic()
    try:
        async with session.post(request.url, data=request.form,
                                headers=request.headers) as response:
            text = await response.text()
            exchange.status = response.status
            if keep_body or not exchange.ok:
                exchange.body = text
    except (aiohttp.ClientError, TimeoutError) as exc:
        exchange.error = type(exc).__name__
    exchange.done = time.monotonic()


def summarize_load(result: LoadResult) -> dict[str, Any]:
    """Return counts, status codes, the achieved rate and latency percentiles of a run."""
    exchanges = [sample.first for sample in result.samples]
    statuses: dict[str, int] = {}
    for exchange in exchanges:
        key = str(exchange.status) if exchange.status is not None else f"error:{exchange.error}"
        statuses[key] = statuses.get(key, 0) + 1
    ok = [e for e in exchanges if e.ok]
    start_lag = [(e.sent - e.due) * 1000 for e in exchanges]
    span = result.scheduled_until - result.started
    return {
        "target_rate": result.rate,
        "sent": len(exchanges),
        "achieved_rate": round(len(exchanges) / span, 1) if span > 0 else None,
        "ok_2xx": len(ok),
        "non_2xx": len(exchanges) - len(ok),
        "statuses": statuses,
        "latency_ms": summarize_ms([e.latency_ms for e in ok]),
        "service_ms": summarize_ms([e.service_ms for e in ok]),
        "latency_by_interval": latency_by_interval(result),
        "max_start_lag_ms": round(max(start_lag), 2) if start_lag else None,
        "wall_seconds": round(result.finished - result.started, 2),
    }


def latency_by_interval(result: LoadResult, seconds: float = 10.0) -> list[dict[str, Any]]:
    """Return latency percentiles of successful requests for each ``seconds`` of the run."""
    buckets: dict[int, list[float]] = {}
    for sample in result.samples:
        if sample.first.ok:
            bucket = int((sample.first.due - result.started) // seconds)
            buckets.setdefault(bucket, []).append(sample.first.latency_ms)
    rows = []
    for bucket in sorted(buckets):
        stats = summarize_ms(buckets[bucket])
        rows.append({"from_s": bucket * seconds, "count": stats["count"], "p50": stats["p50"],
                     "p99": stats["p99"], "max": stats["max"]})
    return rows
