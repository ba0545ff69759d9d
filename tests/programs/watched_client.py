"""A program to watch: requests to URL every 50 ms for S seconds, through one shared
session (pool) or a new session each time, kept (leak). Usage: URL pool|leak S"""
import sys
import threading

import requests

url, mode, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
shared, kept, pause = requests.Session(), [], threading.Event()
print("started", flush=True)
for _ in range(int(seconds / 0.05)):  # bounded in count and so in time
    session = shared if mode == "pool" else requests.Session()
    if mode == "leak":
        kept.append(session)
    session.get(url, timeout=10)
    pause.wait(0.05)  # the program's own pace
