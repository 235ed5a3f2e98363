from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.harness import Harness


@pytest.fixture
def harness(db_url: str, redis_client: redis.Redis, redis_prefix: str) -> Iterator[Harness]:
    h = Harness(db_url, redis_client, redis_prefix)
    yield h
    h.close()
