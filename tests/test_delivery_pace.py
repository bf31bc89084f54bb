"""What a send keeps from before the move onto smtplib (issue 12 part 2): `delivery.rate_limit`
spaces the messages the server receives, and a digest's shared parts are encoded once per send,
not once per recipient."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from publisher.delivery import engine
from tests.conftest import Project
from tests.support.smtp import Behaviour, SmtpServer
from tests.test_delivery import SEND_AT, setup


@pytest.fixture
def arrivals() -> list[float]:
    return []


@pytest.fixture
def server(arrivals: list[float]) -> Iterator[SmtpServer]:
    with SmtpServer(Behaviour(on_data=lambda: arrivals.append(time.monotonic()))) as running:
        yield running


def test_the_rate_limit_spaces_the_messages_over_every_connection(
    project: Project, server: SmtpServer, arrivals: list[float]
) -> None:
    """10 messages a second over 2 connections: 8 messages take at least 7 intervals of 0.1 s.
    Only a lower bound is asserted, which a loaded machine can only make easier to meet."""
    setup(project, server.port, readers=8, rate_limit=10, concurrency=2)
    result = project.cli("digest", "--send", "--backfill", "2", now=SEND_AT)
    assert result.code == 0, result.err
    assert len(server.received) == 8 and len(arrivals) == 8
    # The sender reserves a slot before each send; delivery on the wire may bunch up by a few
    # milliseconds, so each interval is allowed a little less than its nominal 0.1 s.
    assert arrivals[-1] - arrivals[0] >= 7 * 0.1 * 0.8, [
        round(b - a, 3) for a, b in itertools.pairwise(arrivals)
    ]


def test_a_digests_shared_parts_are_encoded_once_per_send(
    project: Project, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real = engine.template_for

    def counting(*args: Any, **kwargs: Any) -> Any:
        template = real(*args, **kwargs)
        built.append(template.digest_id)
        return template

    monkeypatch.setattr(engine, "template_for", counting)
    setup(project, server.port, readers=12, concurrency=3)
    result = project.cli("digest", "--send", "--backfill", "2", now=SEND_AT)
    assert result.code == 0, result.err
    assert len(server.received) == 12
    assert len(built) == 1, built
