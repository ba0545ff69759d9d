"""Real clients no one here wrote reuse their connections and see no failure."""
import re
import subprocess

from tests.tools import tool


def client_connections(server) -> int:
    stats = server.stats()
    return stats["connections_accepted"] - server.stats_connections  # the harness's own /stats connection left out


def test_curl_reuses_its_connection(start_slow_server):
    curl = tool("curl", "curl")
    server = start_slow_server(delay=0.05)
    done = subprocess.run([curl, "-sv", server.url + "a", server.url + "b", server.url + "c"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout == "ok\n" * 3
    assert done.stderr.count("Re-using existing connection") == 2
    assert client_connections(server) == 1


def test_apache_bench_keep_alive_no_failures(start_slow_server):
    ab = tool("ab", "apache2-utils")
    server = start_slow_server(delay=0.05)
    done = subprocess.run([ab, "-k", "-n", "200", "-c", "20", server.url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    figures = dict(re.findall(r"^(Complete requests|Failed requests|Keep-Alive requests):\s+(\d+)", done.stdout, re.MULTILINE))
    assert figures == {"Complete requests": "200", "Failed requests": "0", "Keep-Alive requests": "200"}, done.stdout
    assert client_connections(server) == 20  # one per concurrent ab client, each reused
