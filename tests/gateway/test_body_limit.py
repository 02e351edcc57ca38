"""Request bodies are limited while they stream in, before authentication: a huge body never reaches memory."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from .world import Consortium, expect, signed

pytestmark = pytest.mark.process

MIB = 1024 * 1024
GIB = 1024 * MIB
LIMIT = 2 * MIB
"""The gateways' `max_body_bytes` (the default)."""


def memory_kib(pid: int) -> dict[str, int]:
    """Return the process's resident set now (VmRSS) and at its peak so far (VmHWM), in KiB."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return fields


class PeakSampler:
    """Samples a process's VmRSS every few milliseconds in a thread; `peak` is the highest seen (KiB)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = memory_kib(pid)["VmRSS"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, memory_kib(self.pid)["VmRSS"])


def stream_chunked(url: str, path: str, total: int, chunk: int = MIB) -> tuple[int, bytes]:
    """POST `total` bytes as a chunked body over a raw socket, stopping as soon as the server answers.

    Return how many body bytes were sent and the raw response read.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    sent = 0
    response = b""
    try:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        frame = f"{chunk:x}\r\n".encode() + b"7" * chunk + b"\r\n"
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += chunk
        else:
            sock.sendall(b"0\r\n\r\n")
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            response += data
    finally:
        sock.close()
    return sent, response


def test_a_one_gib_chunked_body_is_cut_at_the_limit_without_growing_the_gateway(consortium: Consortium) -> None:
    """An unsigned 1 GiB chunked POST gets 413 JSON after about the limit; the gateway's memory barely moves."""
    health = consortium.health
    assert health.process is not None
    before = memory_kib(health.process.pid)

    with PeakSampler(health.process.pid) as sampler:
        sent, raw = stream_chunked(health.url, "/v1/records", GIB)
        after = memory_kib(health.process.pid)
    grown_rss, grown_peak = after["VmRSS"] - before["VmRSS"], sampler.peak - before["VmRSS"]
    print(f"gateway VmRSS before {before['VmRSS']} KiB, peak while streaming {sampler.peak} KiB, after "
          f"{after['VmRSS']} KiB (+{grown_rss} KiB, peak +{grown_peak} KiB); client sent {sent // MIB} MiB")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), raw[:300]
    assert httpx.Response(413, content=body).json() == {
        "error": "payload_too_large", "detail": f"request body over {LIMIT} bytes"}
    assert sent < 64 * MIB, f"the gateway read {sent} bytes before cutting"
    assert grown_rss < 32 * 1024 and grown_peak < 32 * 1024
    expect(httpx.get(health.url + "/v1/health", trust_env=False), 200)
    expect(signed(health, consortium.key(health), "GET", "/v1/records/0x" + "00" * 32), 404, "not_found")


def test_a_declared_length_over_the_limit_is_refused_before_the_body(consortium: Consortium) -> None:
    """Content-Length over the limit: 413 without reading a byte of the body."""
    health = consortium.health
    parts = urlsplit(health.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(f"POST /v1/records HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {GIB}\r\n\r\n".encode())
        raw = b""
        while b"\r\n\r\n" not in raw or not raw.endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            raw += data

    assert raw.startswith(b"HTTP/1.1 413"), raw[:300]
    assert b'"error": "payload_too_large"' in raw


def test_a_signed_body_over_the_limit_is_refused_and_one_at_the_limit_is_read(consortium: Consortium) -> None:
    """A signed chunked body one byte over the limit is 413; the same route with a small body still answers."""
    health = consortium.health

    def chunks(size: int) -> Iterator[bytes]:
        yield b" " * size

    over = httpx.post(health.url + "/v1/records", content=chunks(LIMIT + 1), trust_env=False, timeout=60)
    expect(over, 413, "payload_too_large")

    answer = signed(health, consortium.key(health), "POST", "/v1/records", b" " * (LIMIT - 2) + b"{}")
    expect(answer, 422, "invalid_payload")
