"""A client program with its own loop, for ``run --cmd``: bursty traffic through
requests, in one of two shapes.

    python bursty_client.py URL large-pool|slow-leak [SECONDS]

* large-pool: one Session whose pool keeps up to 100 idle connections (healthy);
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


def one() -> None:
    global count
    with lock:
        count += 1
        leak = mode == "slow-leak" and count % 10 == 0
    session = requests.Session() if leak else shared
    if leak:
        kept.append(session)
    session.get(url, timeout=10)


rng = random.Random(7)
end = time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(1 + rng.randint(0, 6)):
        threading.Thread(target=one, daemon=True).start()
    time.sleep(0.05)
