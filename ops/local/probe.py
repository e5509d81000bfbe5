#!/usr/bin/env python3
"""Readiness probes for the local stack, stdlib only so they work before any venv exists.

    probe.py kafka HOST PORT   a real Kafka Metadata (v4) request; prints the cluster id and brokers
    probe.py redis HOST PORT   a RESP PING; prints PONG

Exit 0: the service answered as that service. Exit 1: nothing listens. Exit 2: something
listens but does not speak that protocol (a foreign process on the port).
"""

from __future__ import annotations

import socket
import struct
import sys

TIMEOUT_S = 3.0


class NotThatService(Exception):
    """Something answered, but not in the expected protocol."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise NotThatService("connection closed mid-response")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def probe_kafka(host: str, port: int) -> str:
    """Send Metadata v4 (no topics) and return 'cluster=<id> brokers=<list>'."""
    client_id = b"streamproc-probe"
    correlation_id = 0x5EED
    header = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body = struct.pack(">ib", 0, 0)  # empty topic list, no auto-creation
    request = header + body
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 0 < size < 10_000_000:
            raise NotThatService(f"implausible response size {size}")
        r = _Reader(_recv_exact(sock, size))
    if r.take(">i") != correlation_id:
        raise NotThatService("correlation id mismatch")
    r.take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(r.take(">i")):
        node_id = r.take(">i")
        broker_host = r.string()
        broker_port = r.take(">i")
        r.string()  # rack
        brokers.append(f"{node_id}@{broker_host}:{broker_port}")
    cluster_id = r.string()
    if not brokers:
        raise NotThatService("metadata response lists no brokers (broker still starting?)")
    return f"cluster={cluster_id} brokers={','.join(brokers)}"


def probe_redis(host: str, port: int) -> str:
    """Send a RESP PING and return the reply line."""
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        reply = sock.recv(256)
    if reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH"):
        return reply.decode().strip()
    raise NotThatService(f"unexpected reply {reply[:40]!r}")


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in ("kafka", "redis"):
        print(__doc__, file=sys.stderr)
        return 64
    kind, host, port = argv[1], argv[2], int(argv[3])
    try:
        print((probe_kafka if kind == "kafka" else probe_redis)(host, port))
        return 0
    except (ConnectionRefusedError, socket.timeout, TimeoutError) as exc:
        if isinstance(exc, ConnectionRefusedError):
            print(f"nothing listens on {host}:{port}", file=sys.stderr)
            return 1
        print(f"{host}:{port} accepted but did not answer as {kind} in {TIMEOUT_S}s", file=sys.stderr)
        return 2
    except (NotThatService, struct.error, UnicodeDecodeError, ConnectionResetError) as exc:
        print(f"{host}:{port} does not answer as {kind}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot reach {host}:{port}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
