"""A healthy client that reads each answer LATE_S after it arrives, as a client
starved of CPU does, while its request rate rises from 5 to 40 a second: its
pool grows with the rate (answered sockets wait to be read before they are
reused), though the server sees few requests in flight. It never closes a
socket and never holds one it does not need.

    python late_reader.py URL [SECONDS]
"""
import selectors
import socket
import sys
import time
from urllib.parse import urlsplit

LATE_S = 0.3
FIRST_RATE, LAST_RATE = 5.0, 40.0  # requests a second, rising evenly over the run

target = urlsplit(sys.argv[1])
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 8.0
request = f"GET {target.path or '/'} HTTP/1.1\r\nHost: {target.netloc}\r\n\r\n".encode()
free: list[socket.socket] = []
waiting: set[socket.socket] = set()  # sent, no answer yet
answered: dict[socket.socket, float] = {}  # answer arrived (unread), when
selector = selectors.DefaultSelector()
start = time.monotonic()
end, next_send = start + seconds, start


def read_answer(sock: socket.socket) -> None:
    data = b""
    while not data.endswith(b"ok\n"):  # the slow server's body; one small answer per request
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the server closed a connection")
        data += chunk


while (now := time.monotonic()) < end:
    if now >= next_send:
        sock = free.pop() if free else socket.create_connection((target.hostname, target.port), timeout=10)
        sock.sendall(request)
        selector.register(sock, selectors.EVENT_READ)
        waiting.add(sock)
        next_send += 1 / (FIRST_RATE + (LAST_RATE - FIRST_RATE) * (now - start) / seconds)
    for sock, arrived in list(answered.items()):
        if now - arrived >= LATE_S:
            read_answer(sock)
            del answered[sock]
            free.append(sock)
    due = min([next_send, end, *(arrived + LATE_S for arrived in answered.values())])
    for key, _ in selector.select(timeout=max(0.0, due - time.monotonic())):
        selector.unregister(key.fileobj)
        waiting.discard(key.fileobj)
        answered[key.fileobj] = time.monotonic()
