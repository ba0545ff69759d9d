"""The fixed client's knobs that the seed's table does not show, proved by measurement."""
import dataclasses

from harness import WARM_UP_REQUESTS, FixedClient, fixed_settings_for, idle_across_hosts

HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]  # distinct loopback addresses, one server each


def test_fixed_idle_caps_across_hosts(start_slow_server, leak_settings):
    servers = [start_slow_server(host=host) for host in HOSTS]
    settings = fixed_settings_for(leak_settings.delay, leak_settings.idle_timeout)
    idle = idle_across_hosts(FixedClient(settings), leak_settings, servers)
    # without a total cap each host would keep its 2: 3 * 2 = 6 > 5, so the total cap must bind
    assert len(HOSTS) * min(settings.max_idle_per_host, WARM_UP_REQUESTS) > settings.max_idle_total
    assert all(n <= settings.max_idle_per_host for n in idle.values()), f"idle sockets per host: {idle}"
    # tolerance 0: the cap is enforced under one lock, and every host had surplus to offer
    assert sum(idle.values()) == settings.max_idle_total, f"idle sockets per host: {idle}"


def test_fixed_control_without_total_cap(start_slow_server, leak_settings):
    """The control: the same traffic with the total cap lifted keeps 2 on every host."""
    servers = [start_slow_server(host=host) for host in HOSTS]
    settings = dataclasses.replace(fixed_settings_for(leak_settings.delay, leak_settings.idle_timeout),
                                   max_idle_total=100)
    idle = idle_across_hosts(FixedClient(settings), leak_settings, servers)
    assert sorted(idle.values()) == [settings.max_idle_per_host] * len(HOSTS), f"idle sockets per host: {idle}"
