"""Fixtures for the /feed WebSocket (docs/feed.md): a small blocking WebSocket client written
over a plain socket, so that a test can also misbehave on purpose (stop reading, never answer
a ping, send garbage), and the feed_client factory that closes every client at teardown.
"""
import base64
import json
import os
import socket
import struct
import time

import pytest

SUBPROTOCOL = "remsim-feed.v1"


class FeedClosed(Exception):
    """The server closed the WebSocket: .code and .reason of its close frame."""

    def __init__(self, code, reason):
        super().__init__(f"closed {code} {reason!r}")
        self.code, self.reason = code, reason


class FeedClient:
    """One /feed connection. recv() returns the next message as a dict; pings are answered
    unless auto_pong is False. Every message received is also kept in .messages."""

    def __init__(self, port, token=None, subprotocol=SUBPROTOCOL, path="/feed", rcvbuf=None,
                 auto_pong=True, timeout=5.0):
        self.auto_pong = auto_pong
        self.messages = []
        self.pings = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        if token:
            lines.append(f"Authorization: Bearer {token}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            while b"\r\n\r\n" not in self.buf:
                self._fill(time.monotonic() + timeout)
        except (EOFError, ConnectionResetError):
            self.status_line, self.upgraded = "(closed without an answer)", False
            return
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status_line = head.split(b"\r\n")[0].decode()
        self.upgraded = " 101 " in self.status_line + " "

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from the feed in time")
        self.sock.settimeout(left)
        data = self.sock.recv(1 << 16)
        if not data:
            raise EOFError("the server closed the connection")
        self.buf += data

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload=b""):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def send_json(self, obj):
        self.send_frame(0x1, json.dumps(obj).encode())

    def recv(self, timeout=5.0):
        """The next message (dict); raises FeedClosed, TimeoutError or EOFError."""
        deadline = time.monotonic() + timeout
        parts = []
        while True:
            b0, b1 = self._need(2, deadline)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._need(2, deadline))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._need(8, deadline))[0]
            assert not b1 & 0x80, "server frames are never masked"
            payload = self._need(n, deadline)
            op = b0 & 0x0F
            if op == 0x9:
                self.pings += 1
                if self.auto_pong:
                    self.send_frame(0xA, payload)
                continue
            if op == 0xA:
                continue
            if op == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                raise FeedClosed(code, payload[2:].decode(errors="replace"))
            assert op in (0x0, 0x1), f"unexpected opcode {op}"
            parts.append(payload)
            if b0 & 0x80:
                msg = json.loads(b"".join(parts))
                self.messages.append(msg)
                return msg

    def recv_until(self, check, timeout=5.0):
        """Messages until check(msg) holds; returns that message."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if check(msg):
                return msg

    def close_reason(self, timeout=5.0):
        """Reads (and drops) messages until the close frame: (code, reason)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.recv(max(0.01, deadline - time.monotonic()))
        except FeedClosed as e:
            return e.code, e.reason


@pytest.fixture
def feed_client():
    """feed_client(port, token=None, **kw) -> FeedClient; all closed at teardown."""
    clients = []

    def connect(port, token=None, **kw):
        c = FeedClient(port, token, **kw)
        clients.append(c)
        return c

    yield connect
    for c in clients:
        c.close()


def _remsimctl(bin_path, *args):
    import subprocess
    r = subprocess.run([str(bin_path("tools/remsimctl")), *map(str, args)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def feed_token(bin_path, tmp_path):
    """feed_token(role="admin", id=1, *extra) -> a token signed by tmp_path/server.key (made
    on first use); feed_token.key is the key file, feed_token.ids[token] its token id."""
    key = tmp_path / "server.key"

    def issue(role="admin", id=1, *extra):
        if not key.exists():
            _remsimctl(bin_path, "keygen", "--dir", tmp_path)
        t = json.loads(_remsimctl(bin_path, "token", "issue", "--key", key, "--role", role,
                                  "--id", id, "--json", *extra))
        issue.ids[t["token"]] = t["token_id"]
        return t["token"]

    issue.key = key
    issue.ids = {}
    issue()
    return issue


@pytest.fixture
def feed_server(remsim_server, postgres, feed_token):
    """feed_server(*args) -> remsim-server with the key of feed_token, against postgres."""
    return lambda *args, name="server": remsim_server(postgres, "--key", feed_token.key, *args,
                                                      name=name)
