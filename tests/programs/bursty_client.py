"""A client program with its own loop, for ``run --cmd``: bursty traffic through
requests, in one of two shapes.

    python bursty_client.py URL large-pool|slow-leak [SECONDS]

* large-pool: one Session whose pool keeps up to 100 idle connections (healthy),
  used by at most ``LARGE_POOL_AT_ONCE`` requests at once (the program's thread
  budget), all of them in an opening burst: its pool fills at once, then holds;
* slow-leak: one Session, but every 10th request goes through a new Session that
  is kept alive (a leak of 1 in 10 requests).

Every 50 ms a periodic request plus 0..6 random extra ones; stops after SECONDS (30).
"""
import random
import sys
import threading
import time

import requests
from requests.adapters import HTTPAdapter

url, mode = sys.argv[1], sys.argv[2]
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
shared = requests.Session()
shared.mount("http://", HTTPAdapter(pool_maxsize=100))
kept = []
count = 0
lock = threading.Lock()
# Without a cap the pool grew by record bursts for as long as it ran: on a loaded machine the client had more
# connections open at once than the server ever saw requests in flight (connecting and sending count on its
# side only), so its floor rose past the server's peak and stayed undecided. 24 is what a quiet machine's 12-s
# run filled uncapped (floors 21 -> 24), still a large pool beside requests' default of 10.
LARGE_POOL_AT_ONCE = 24
slots = threading.BoundedSemaphore(LARGE_POOL_AT_ONCE if mode == "large-pool" else 1_000_000)


def one() -> None:
    global count
    with lock:
        count += 1
        leak = mode == "slow-leak" and count % 10 == 0
    session = requests.Session() if leak else shared
    if leak:
        kept.append(session)
    with slots:
        session.get(url, timeout=10)


rng = random.Random(7)
end = time.monotonic() + seconds
for _ in range(LARGE_POOL_AT_ONCE if mode == "large-pool" else 0):
    threading.Thread(target=one, daemon=True).start()
while time.monotonic() < end:
    for _ in range(1 + rng.randint(0, 6)):
        threading.Thread(target=one, daemon=True).start()
    time.sleep(0.05)
