"""The compute-host scheduler (backend.libvirt.placement): spread and pack by free vCPUs and
memory, availability zones, a named host, and the reason given when nothing fits."""
from __future__ import annotations

import pytest

from backend.libvirt.placement import HostLoad, NoHostFits, Request, capacity_of, choose, place_many


def hosts():
    return [HostLoad("h-a", "us-east-1a", 16, 8192, order=0),
            HostLoad("h-b", "us-east-1a", 16, 8192, order=1),
            HostLoad("h-c", "us-east-1b", 8, 4096, order=2)]


def test_spread_alternates_between_equal_hosts():
    placed = place_many(hosts()[:2], [Request(1, 1024)] * 4, "spread")
    assert placed == ["h-a", "h-b", "h-a", "h-b"]


def test_pack_fills_one_host_before_the_next():
    placed = place_many(hosts()[:2], [Request(2, 2048)] * 5, "pack")
    assert placed == ["h-a", "h-a", "h-a", "h-a", "h-b"]


def test_spread_prefers_the_larger_share_free_not_the_larger_host():
    big = HostLoad("h-big", None, 64, 65536, used_vcpus=48, used_memory_mib=49152)   # 25 % free
    small = HostLoad("h-small", None, 8, 8192, used_vcpus=2, used_memory_mib=2048)    # 75 % free
    assert choose([big, small], Request(1, 512), "spread").host_id == "h-small"
    assert choose([big, small], Request(1, 512), "pack").host_id == "h-small"   # least free MiB that fits
    assert choose([big, small], Request(1, 7000), "pack").host_id == "h-big"    # only the big one fits


def test_zone_and_named_host_are_honoured():
    assert choose(hosts(), Request(1, 512, zone="us-east-1b")).host_id == "h-c"
    assert choose(hosts(), Request(1, 512, host_id="h-b")).host_id == "h-b"
    zoneless = HostLoad("h-any", None, 4, 4096)
    assert choose([zoneless], Request(1, 512, zone="us-east-1c")).host_id == "h-any"


def test_nothing_fits_says_why():
    with pytest.raises(NoHostFits, match="zone us-east-1b"):
        choose(hosts(), Request(9, 512, zone="us-east-1b"))
    with pytest.raises(NoHostFits, match="h-zz does not exist"):
        choose(hosts(), Request(1, 512, host_id="h-zz"))
    full = HostLoad("h-full", None, 4, 4096, used_vcpus=4)
    with pytest.raises(NoHostFits, match="no capacity for 1 vCPUs"):
        choose([full], Request(1, 1))
    disabled = HostLoad("h-off", None, 4, 4096, enabled=False)
    with pytest.raises(NoHostFits):
        choose([disabled], Request(1, 1))
    with pytest.raises(ValueError):
        choose(hosts(), Request(1, 1), "random")


def test_capacity_of_a_host():
    assert capacity_of(4, 16 * 1024 * 1024) == (32, 13107)
