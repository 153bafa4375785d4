"""Subscribers across a Redis crash and a server crash: nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from decisiongraph.sdk import DecisionGraphClient, LiveConnection, SubscriptionError
from server.embedded import redis_server
from server.settings import Settings
from server.startup import create_key
from tests.e2e.conftest import free_port, process_env, start, wait_http
from tests.support import input_observed, new_tenant, started, to_input

pytestmark = pytest.mark.e2e

EVENTS = "subscription($after: Long!) { events(afterLogSeq: $after) { logSeq eventId } }"


def kill_redis(directory: Path) -> None:
    pid = int((directory / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def batch(prefix: str, n: int) -> list[dict[str, Any]]:
    trace = f"{prefix}-{n}"
    return [to_input(started(trace))] + [to_input(input_observed(trace, s)) for s in (1, 2, 3)]


async def ingest_for(api: DecisionGraphClient, seconds: float, acknowledged: list[str]) -> None:
    """Append small batches back to back; record what the server acknowledged."""
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        try:
            stored = await api.append(batch("o", n))
        except Exception:  # the server itself may be down in a test; retry the same batch
            await asyncio.sleep(0.1)
            continue
        acknowledged += [e.event_id for e in stored]
        n += 1
        await asyncio.sleep(0.01)


def test_redis_killed_and_restarted_during_ingest_loses_nothing(
    private_redis: Path, settings: Settings, tmp_path: Path
) -> None:
    url = (private_redis / "redis.url").read_text().strip()
    namespace = f"out{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = process_env(settings, DG_REDIS_URL=url, DG_NAMESPACE=namespace, DG_HTTP_PORT=str(port))
    server = start("server", ["serve"], env, tmp_path)
    worker = start("worker", ["worker"], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, None, [tenant], ["admin"]))
    try:
        wait_http(f"{base}/healthz")

        async def scenario() -> tuple[list[str], list[int], list[str]]:
            acknowledged: list[str] = []
            received: list[dict[str, Any]] = []
            async with DecisionGraphClient(base, token) as api:
                writer = asyncio.create_task(ingest_for(api, 6.0, acknowledged))

                async def outage() -> None:
                    await asyncio.sleep(1.5)
                    kill_redis(private_redis)
                    await asyncio.sleep(2.0)  # ingest carries on without Redis
                    redis_server.ensure(private_redis)

                crash = asyncio.create_task(outage())
                async with LiveConnection(base, token) as live:
                    async with asyncio.timeout(30):
                        async for data in live.subscribe(EVENTS, {"after": 0}):
                            received.append(data["events"])
                            if len(received) >= 40:
                                break
                # Resume from the last position after the outage, as a client would.
                await crash
                await writer
                async with LiveConnection(base, token) as live:
                    after = received[-1]["logSeq"]
                    async with asyncio.timeout(30):
                        async for data in live.subscribe(EVENTS, {"after": after}):
                            received.append(data["events"])
                            if len(received) == len(acknowledged):
                                break
                projected = await api.execute(
                    "query($n: Long!) { projectionHealth(atLeast: $n) { projectedTo } }",
                    {"n": len(acknowledged)},
                )
            positions = [e["logSeq"] for e in received]
            return (
                acknowledged,
                positions,
                [e["eventId"] for e in received]
                + [str(projected["projectionHealth"]["projectedTo"])],
            )

        acknowledged, positions, ids = asyncio.run(scenario())
    finally:
        server.stop()
        worker.stop()
    assert len(acknowledged) > 80  # ingest really ran through the outage
    assert positions == list(range(1, len(acknowledged) + 1))
    assert ids[:-1] == acknowledged
    assert ids[-1] == str(len(acknowledged))  # projections caught up after Redis came back


def test_a_subscriber_resumes_after_the_server_is_killed(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = process_env(settings, DG_HTTP_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, None, [tenant], ["writer"]))
    server = start("server", ["serve"], env, tmp_path)
    try:
        wait_http(f"{base}/healthz")

        async def scenario() -> tuple[list[int], list[str], list[str]]:
            acknowledged: list[str] = []
            received: list[dict[str, Any]] = []
            async with DecisionGraphClient(base, token) as api:
                for n in range(5):
                    acknowledged += [e.event_id for e in await api.append(batch("a", n))]

                async def follow_until_killed() -> None:
                    async with LiveConnection(base, token) as live:
                        async for data in live.subscribe(EVENTS, {"after": 0}):
                            received.append(data["events"])
                            if len(received) == 12:
                                server.popen.send_signal(signal.SIGKILL)

                with pytest.raises(SubscriptionError):
                    await follow_until_killed()
                servers.append(start("server2", ["serve"], env, tmp_path))
                await asyncio.to_thread(wait_http, f"{base}/healthz")
                for n in range(5, 8):
                    acknowledged += [e.event_id for e in await api.append(batch("a", n))]
                async with LiveConnection(base, token) as live:
                    after = received[-1]["logSeq"]
                    async with asyncio.timeout(20):
                        async for data in live.subscribe(EVENTS, {"after": after}):
                            received.append(data["events"])
                            if len(received) == len(acknowledged):
                                break
            return [e["logSeq"] for e in received], [e["eventId"] for e in received], acknowledged

        servers: list[Any] = []
        positions, ids, acknowledged = asyncio.run(scenario())
    finally:
        server.stop()
        for other in servers:
            other.stop()
    assert positions == list(range(1, 33))
    assert ids == acknowledged


class StalledSubscriber:
    """A websocket client that subscribes and then never reads: bytes on a raw socket
    with a small receive buffer (client libraries read ahead into memory)."""

    def __init__(self, port: int, token: str, query: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                "GET /graphql HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            ).encode()
        )
        assert self.sock.recv(4096).startswith(b"HTTP/1.1 101")
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        self.send(init)
        assert b"connection_ack" in self.sock.recv(4096)
        self.send({"id": "1", "type": "subscribe", "payload": {"query": query}})

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        mask = os.urandom(4)
        size = len(data)
        head = bytes([0x81]) + (
            bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack("!H", size)
        )
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def drain(self, timeout: float = 20) -> bytes:
        """Everything the server sent, up to its close (EOF)."""
        self.sock.settimeout(timeout)
        received = bytearray()
        while chunk := self.sock.recv(1 << 20):
            received += chunk
        self.sock.close()
        return bytes(received)


def test_a_subscriber_that_stops_reading_is_cut_off_without_slowing_anyone(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = process_env(settings, DG_HTTP_PORT=str(port), DG_SLOW_CONSUMER_SECONDS="2")
    base = f"http://127.0.0.1:{port}"
    tenant = new_tenant()
    token = asyncio.run(create_key(settings, None, [tenant], ["writer"]))
    server = start("server", ["serve"], env, tmp_path)
    blob = "x" * 50_000  # 450 events of 50 KB: far more than the socket buffers hold
    query = "subscription { events(afterLogSeq: 0) { logSeq payload } }"

    async def scenario(stalled: StalledSubscriber) -> list[int]:
        healthy: list[int] = []
        async with DecisionGraphClient(base, token) as api, LiveConnection(base, token) as live:

            async def follow() -> None:
                async for data in live.subscribe(EVENTS, {"after": 0}):
                    healthy.append(data["events"]["logSeq"])
                    if len(healthy) == 500:
                        return

            follower = asyncio.create_task(follow())
            for n in range(50):
                trace = f"big-{n}"
                events = [to_input(started(trace))]
                for s in range(1, 10):
                    event = input_observed(trace, s)
                    event["payload"]["blob"] = blob
                    events.append(to_input(event))
                await api.append(events)
            async with asyncio.timeout(30):
                await follower
            await asyncio.sleep(4)  # the stalled subscriber's limit (2 s) passes
        return healthy

    try:
        wait_http(f"{base}/healthz")
        stalled = StalledSubscriber(port, token, query)
        healthy = asyncio.run(scenario(stalled))
        received = stalled.drain()
    finally:
        server.stop()
    assert healthy == list(range(1, 501))  # the reader next to it was not held back
    assert "cutting off a subscriber" in server.output()
    assert len(received) < 15_000_000  # it stopped being fed: 22 MB were published
    close = received.rindex(b"\x88")  # the close frame, after what was in flight
    code = struct.unpack("!H", received[close + 2 : close + 4])[0]
    assert code == 1008
    assert received[close + 4 :].startswith(b"slow consumer: nothing read for 2s")
