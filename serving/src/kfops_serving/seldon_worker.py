"""A gunicorn worker for the v1 wrapper that hands its threads only complete, well-framed requests.

gunicorn's sync and threaded workers give a connection to a worker (thread) as soon as it is accepted; the request
is then read with blocking reads. A client that stalls mid-upload therefore holds a worker until it gives up, and a
few of them block every other request; one stalled past gunicorn's timeout gets its worker killed.

:class:`BufferingWorker` reads every request in its event loop instead, without blocking: the request line, the
headers and the whole body (by Content-Length or chunked framing) are buffered, checked against HTTP/1.1's framing
rules (RFC 9112) and limits, and only then handed to a thread, which parses the buffered bytes and never waits on
the client. A request not received in full within ``read_timeout`` seconds is answered 408 and closed; a framing
error gets its own 4xx with a short JSON message in Seldon's failure shape, which never repeats what the
client sent. Each response closes its connection, as gunicorn's sync worker (the wrapper's previous one) did.

The loop accepts new connections only while a thread is free, so a busy worker leaves new clients to the others.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import selectors
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

#: Longest request line, header field and most header fields: gunicorn's own defaults (its parser checks them again,
#: with an HTML answer that quotes the request).
MAX_REQUEST_LINE = 4094
MAX_LINE = 8190
MAX_FIELDS = 100
#: Seconds a refused connection is still read (and discarded) so the client sees the answer rather than a reset.
DRAIN_SECONDS = 2.0
#: Longest chunk-size line of a chunked body (size, extensions and CRLF).
MAX_CHUNK_LINE = 1024

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_METHOD = re.compile(rb"^[A-Z]{3,20}$")
_TARGET = re.compile(rb"^(/|https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/|$))[\x21-\x7e]*$")
_PRINTABLE = re.compile(rb"^[\x20-\x7e]*$")
_VERSION = re.compile(rb"^HTTP/(\d)\.(\d)$")
_FIELD_VALUE = re.compile(rb"^[\t\x20-\x7e\x80-\xff]*$")
_CHUNK_SIZE = re.compile(rb"^([0-9A-Fa-f]{1,16})(;[\t\x20-\x7e]*)?$")


class Refused(Exception):
    """A request answered by the worker itself: HTTP status, reason and a short message."""

    def __init__(self, status: int, reason: str, info: str) -> None:
        super().__init__(info)
        self.status, self.reason, self.info = status, reason, info


@dataclass
class Pending:
    """A connection whose request is still arriving."""

    conn: Any
    deadline: float
    buffer: bytearray = field(default_factory=bytearray)
    head_end: int = -1
    body_length: int | None = None  # Content-Length, when framed by it
    chunked: bool = False
    chunk_offset: int = 0  # where the next unread chunk starts (chunked bodies)
    chunk_total: int = 0
    continue_sent: bool = False
    expects_continue: bool = False
    draining: bool = False  # answered and refused: read and discarded until the client closes or time is up


def parse_head(head: bytes, max_body: int) -> tuple[int | None, bool, bool]:
    """Check a request's line and header fields; return (Content-Length, chunked, expects 100-continue).

    Raises:
        Refused: A malformed or unsupported request line or header section.
    """
    lines = head.split(b"\r\n")
    request_line = lines[0]
    parts = request_line.split(b" ")
    if len(parts) != 3 or not _TARGET.match(parts[1]):
        raise Refused(400, "Bad Request", "malformed request line: METHOD SP /path SP HTTP-version")
    if not _METHOD.match(parts[0]):
        raise Refused(400, "Bad Request", "the method must be an upper-case HTTP method such as POST")
    version = _VERSION.match(parts[2])
    if not version:
        raise Refused(400, "Bad Request", "malformed HTTP version in the request line")
    if version.group(1) != b"1":
        # A malformed request is a 4xx here (RFC 9110 would allow 505): the client must change its request.
        raise Refused(400, "Bad Request", "this server speaks HTTP/1.0 and HTTP/1.1")
    if len(lines) - 1 > MAX_FIELDS:
        raise Refused(431, "Request Header Fields Too Large", f"more than {MAX_FIELDS} header fields")
    lengths: list[bytes] = []
    encodings: list[bytes] = []
    expects = False
    multipart = False
    for line in lines[1:]:
        if len(line) > MAX_LINE:
            raise Refused(431, "Request Header Fields Too Large", f"a header field is longer than {MAX_LINE} bytes")
        if line[:1] in (b" ", b"\t"):
            raise Refused(400, "Bad Request", "obsolete line folding in a header field")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise Refused(400, "Bad Request", "malformed header field: a token name, a colon, then the value")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.match(value):
            raise Refused(400, "Bad Request", "a header field value holds control characters")
        lowered = name.lower()
        if lowered == b"content-length":
            lengths.extend(v.strip(b" \t") for v in value.split(b","))
        elif lowered == b"transfer-encoding":
            encodings.extend(v.strip(b" \t").lower() for v in value.split(b",") if v.strip(b" \t"))
        elif lowered == b"content-type":
            multipart = value.split(b";", 1)[0].strip(b" \t").lower().startswith(b"multipart/")
        elif lowered == b"expect":
            if value.lower() != b"100-continue":
                raise Refused(417, "Expectation Failed", "the only expectation this server meets is 100-continue")
            expects = True
    if multipart:
        # The wrapper's werkzeug (held below 2.3 by seldon-core 1.17.1) has multipart-parsing advisories, and kfops
        # takes JSON (or a form field json=) only: multipart bodies never reach it (docs/security.md).
        raise Refused(415, "Unsupported Media Type", "multipart bodies are not accepted: send application/json")
    if encodings:
        if lengths:
            raise Refused(400, "Bad Request", "a request may not carry both Transfer-Encoding and Content-Length")
        if version.group(2) == b"0":
            raise Refused(400, "Bad Request", "Transfer-Encoding is not defined for HTTP/1.0")
        if encodings != [b"chunked"]:
            raise Refused(400, "Bad Request", "the only transfer coding this server accepts is chunked")
        return None, True, expects
    if not lengths:
        return 0, False, expects
    # One value only: a list or a repeated field, even of equal values, is what request smuggling is built from
    # (RFC 9112 6.3 lets a server refuse it), and gunicorn's parser would answer it with a page quoting the request.
    if len(lengths) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
        raise Refused(400, "Bad Request", "Content-Length must be one decimal number of bytes")
    length = int(lengths[0])
    if length > max_body:
        raise Refused(413, "Request Entity Too Large", f"the body may be at most {max_body} bytes")
    return length, False, expects


def chunked_end(buffer: bytearray, pending: Pending, max_body: int) -> int | None:
    """Where a chunked body (starting at ``pending.chunk_offset``) ends in ``buffer``, or None if it has not.

    Raises:
        Refused: Malformed chunk framing, or more than ``max_body`` bytes of data.
    """
    offset = pending.chunk_offset
    while True:
        line_end = buffer.find(b"\r\n", offset, offset + MAX_CHUNK_LINE + 2)
        if line_end < 0:
            if len(buffer) - offset > MAX_CHUNK_LINE:
                raise Refused(400, "Bad Request", "malformed chunked body: chunk-size line too long")
            return None
        match = _CHUNK_SIZE.match(bytes(buffer[offset:line_end]))
        if not match:
            raise Refused(400, "Bad Request", "malformed chunked body: expected a hexadecimal chunk size")
        size = int(match.group(1), 16)
        if size == 0:
            # The trailer section: header fields until an empty line.
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if buffer[line_end:line_end + 4] == b"\r\n\r\n":
                return line_end + 4
            if trailer_end < 0:
                if len(buffer) - line_end > MAX_LINE:
                    raise Refused(431, "Request Header Fields Too Large", "the chunked trailer section is too long")
                return None
            return trailer_end + 4
        pending.chunk_total += size
        if pending.chunk_total > max_body:
            raise Refused(413, "Request Entity Too Large", f"the body may be at most {max_body} bytes")
        data_end = line_end + 2 + size
        if len(buffer) < data_end + 2:
            pending.chunk_total -= size  # counted again once the chunk is complete
            return None
        if buffer[data_end:data_end + 2] != b"\r\n":
            raise Refused(400, "Bad Request", "malformed chunked body: chunk data not followed by CRLF")
        offset = pending.chunk_offset = data_end + 2


def failure(status: int, reason: str, info: str) -> bytes:
    """A complete HTTP response in Seldon's failure shape, closing the connection."""
    body = json.dumps({"status": {"code": status, "info": info, "reason": reason, "status": "FAILURE"}}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class BufferingWorker(ThreadWorker):
    """gunicorn's threaded worker, with requests read in full by the event loop before a thread sees them."""

    #: Seconds a client has to send its whole request (line, headers and body) once connected.
    read_timeout: float = 30.0
    #: Largest accepted body, in bytes (after chunked decoding).
    max_body: int = 32 * 1024 * 1024

    def init_process(self) -> None:
        """Set up the pending-request table and the pipe that wakes the loop when a thread finishes."""
        self._pending: dict[Any, Pending] = {}
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._accepting = False
        super().init_process()

    # --- the event loop -----------------------------------------------------------------------------------------

    def run(self) -> None:
        """Gunicorn's threaded loop, accepting only while a thread is free and expiring stalled requests."""
        self.poller.register(self._wake_read, selectors.EVENT_READ, self._drain_wakeups)
        self._listeners = [(sock, partial(self.accept, sock.getsockname())) for sock in self.sockets]
        for sock in self.sockets:
            sock.setblocking(False)
        while self.alive:
            self.notify()
            self._set_accepting(len(self.futures) < self.cfg.threads and self.nr_conns < self.worker_connections)
            for key, _ in self.poller.select(1.0):
                key.data(key.fileobj)
            done = [future for future in self.futures if future.done()]
            for future in done:
                self.futures.remove(future)
            if not self.is_parent_alive():
                break
            self._expire_stalled()
        self.tpool.shutdown(False)
        self.poller.close()
        for sock in self.sockets:
            sock.close()

    def _set_accepting(self, accepting: bool) -> None:
        if accepting == self._accepting:
            return
        for sock, acceptor in self._listeners:
            if accepting:
                self.poller.register(sock, selectors.EVENT_READ, acceptor)
            else:
                self.poller.unregister(sock)
        self._accepting = accepting

    def _drain_wakeups(self, _fileobj: Any) -> None:
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass

    def accept(self, server: Any, listener: Any) -> None:
        """Accept a connection and start reading its request without blocking."""
        try:
            sock, client = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        conn = TConn(self.cfg, sock, client, server)  # non-blocking from here on
        self.nr_conns += 1
        pending = Pending(conn=conn, deadline=time.monotonic() + self.read_timeout)
        self._pending[sock] = pending
        self.poller.register(sock, selectors.EVENT_READ, partial(self._readable, pending))

    def _readable(self, pending: Pending, sock: Any) -> None:
        try:
            data = sock.recv(256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(pending)
            return
        if not data:  # the client stopped sending (or went away) before finishing its request
            if pending.buffer and not pending.draining:  # it may still read: tell it why nothing will come
                self._refuse(pending, Refused(400, "Bad Request", "the request ended before it was complete"))
            else:
                self._close(pending)
            return
        if pending.draining:
            return
        pending.buffer += data
        try:
            complete = self._complete(pending)
        except Refused as refused:
            self._refuse(pending, refused)
            return
        if complete:
            self._dispatch(pending)

    def _complete(self, pending: Pending) -> bool:
        buffer = pending.buffer
        if pending.head_end < 0:
            while buffer.startswith(b"\r\n"):  # RFC 9112 2.2: empty lines before a request line are ignored
                del buffer[:2]
            end = buffer.find(b"\r\n\r\n")
            line = bytes(buffer[:buffer.find(b"\r\n")] if b"\r\n" in buffer else buffer)
            if not _PRINTABLE.match(line):  # not HTTP at all (TLS, binary): no need to wait for more
                raise Refused(400, "Bad Request", "this is not an HTTP/1.1 request line")
            if end < 0:
                first_line = buffer.find(b"\r\n")
                if (first_line < 0 and len(buffer) > MAX_REQUEST_LINE) or first_line > MAX_REQUEST_LINE:
                    raise Refused(414, "URI Too Long", f"the request line is longer than {MAX_REQUEST_LINE} bytes")
                if len(buffer) > MAX_LINE * (MAX_FIELDS + 1):
                    raise Refused(431, "Request Header Fields Too Large", "the header section is too long")
                if b"\n" in buffer.replace(b"\r\n", b""):
                    raise Refused(400, "Bad Request", "lines must end with CRLF")
                return False
            head = bytes(buffer[:end])
            if len(head.split(b"\r\n", 1)[0]) > MAX_REQUEST_LINE:
                raise Refused(414, "URI Too Long", f"the request line is longer than {MAX_REQUEST_LINE} bytes")
            if b"\n" in head.replace(b"\r\n", b"") or b"\r" in head.replace(b"\r\n", b""):
                raise Refused(400, "Bad Request", "lines must end with CRLF")
            pending.body_length, pending.chunked, pending.expects_continue = parse_head(head, self.max_body)
            pending.head_end = pending.chunk_offset = end + 4
        if pending.expects_continue and not pending.continue_sent:
            pending.continue_sent = True
            if len(buffer) == pending.head_end and (pending.chunked or pending.body_length):
                self._send(pending, b"HTTP/1.1 100 Continue\r\n\r\n")
        if pending.chunked:
            return chunked_end(buffer, pending, self.max_body) is not None
        assert pending.body_length is not None
        return len(buffer) >= pending.head_end + pending.body_length

    def _dispatch(self, pending: Pending) -> None:
        sock = pending.conn.sock
        self.poller.unregister(sock)
        del self._pending[sock]
        conn = pending.conn
        conn.init()
        conn.sock.settimeout(self.read_timeout)  # a client that does not read its answer cannot hold the thread
        data = bytes(pending.buffer)
        if pending.expects_continue:  # already answered here; gunicorn would send a second 100 Continue
            head, body = data[:pending.head_end], data[pending.head_end:]
            head = b"\r\n".join(line for line in head.split(b"\r\n") if not line.lower().startswith(b"expect:"))
            data = head + body
        conn.parser.unreader.unread(data)
        future = self.tpool.submit(self.handle, conn)
        self._wrap_future(future, conn)
        future.add_done_callback(self._wake)

    def _wake(self, _future: Any) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe: the loop is waking up anyway
            os.write(self._wake_write, b"x")

    def _expire_stalled(self) -> None:
        now = time.monotonic()
        for pending in [p for p in self._pending.values() if p.deadline <= now]:
            if pending.draining:
                self._close(pending)
            else:
                self._refuse(pending, Refused(408, "Request Timeout",
                                              f"the request did not arrive in full within {self.read_timeout:g} s"))

    def _refuse(self, pending: Pending, refused: Refused) -> None:
        """Answer, then keep reading (and discarding) a while: a close with unread data resets the connection.

        After a reset the client might never see the answer.
        """
        self._send(pending, failure(refused.status, refused.reason, refused.info))
        try:
            pending.conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(pending)
            return
        pending.draining, pending.buffer = True, bytearray()
        pending.deadline = time.monotonic() + DRAIN_SECONDS

    def _send(self, pending: Pending, data: bytes) -> None:
        with contextlib.suppress(OSError):  # small, and best effort: the socket is non-blocking
            pending.conn.sock.send(data)

    def _close(self, pending: Pending) -> None:
        sock = pending.conn.sock
        self._pending.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self.poller.unregister(sock)
        self.nr_conns -= 1
        pending.conn.close()
