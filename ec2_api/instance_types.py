"""The instance type catalogue (built in, or extended by a TOML file named in the configuration),
DescribeInstanceTypes and DescribeInstanceTypeOfferings.

A catalogue file looks like::

    include_builtin = true            # keep the built-in types (default)
    [types."n1.tiny"]
    vcpus = 1
    memory_mib = 256
    burstable = false                 # optional: cores, threads_per_core, network_performance,
                                      # max_network_interfaces, ipv4_per_interface, clock_ghz
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

from ec2_api.common import check_max_results
from ec2_api.errors import InvalidParameterValue, check_dry_run, ec2_error
from ec2_api.filters import apply_filters, paginate
from ec2_api.regions import zone_id

InvalidInstanceType = ec2_error("InvalidInstanceType")
DEFAULT_INSTANCE_TYPE = "m1.small"   # what EC2 launches when RunInstances names no type


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    cores: int = 0
    threads_per_core: int = 0
    burstable: bool = False
    current_generation: bool = True
    free_tier: bool = False
    network_performance: str = "Up to 5 Gigabit"
    max_network_interfaces: int = 3
    ipv4_per_interface: int = 10
    clock_ghz: float = 2.5
    manufacturer: str = "Intel"
    hypervisor: str = "nitro"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def core_count(self) -> int:
        return self.cores or max(1, self.vcpus // self.threads)

    @property
    def threads(self) -> int:
        if self.threads_per_core:
            return self.threads_per_core
        return 2 if self.vcpus >= 2 and self.hypervisor == "nitro" else 1


def _family(prefix: str, sizes: list[tuple[str, int, int, int, int]], **common: Any) -> list[InstanceType]:
    return [InstanceType(f"{prefix}.{size}", vcpus, memory, max_network_interfaces=enis,
                         ipv4_per_interface=ips, **common)
            for size, vcpus, memory, enis, ips in sizes]


_T3_SIZES = [("nano", 2, 512, 2, 2), ("micro", 2, 1024, 2, 2), ("small", 2, 2048, 3, 4),
             ("medium", 2, 4096, 3, 6), ("large", 2, 8192, 3, 12), ("xlarge", 4, 16384, 4, 15),
             ("2xlarge", 8, 32768, 4, 15)]
_M5_SIZES = [("large", 2, 8192, 3, 10), ("xlarge", 4, 16384, 4, 15), ("2xlarge", 8, 32768, 4, 15),
             ("4xlarge", 16, 65536, 8, 30)]
_C5_SIZES = [("large", 2, 4096, 3, 10), ("xlarge", 4, 8192, 4, 15), ("2xlarge", 8, 16384, 4, 15),
             ("4xlarge", 16, 32768, 8, 30)]
_T2_SIZES = [("nano", 1, 512, 2, 2), ("micro", 1, 1024, 2, 2), ("small", 1, 2048, 3, 4),
             ("medium", 2, 4096, 3, 6), ("large", 2, 8192, 3, 12)]

BUILTIN: list[InstanceType] = [
    *_family("t2", _T2_SIZES, burstable=True, network_performance="Low to Moderate", clock_ghz=2.3,
             hypervisor="xen", threads_per_core=1),
    *_family("t3", _T3_SIZES, burstable=True, clock_ghz=2.5),
    *_family("t3a", _T3_SIZES, burstable=True, clock_ghz=2.2, manufacturer="AMD"),
    *_family("m5", _M5_SIZES, network_performance="Up to 10 Gigabit", clock_ghz=3.1),
    *_family("c5", _C5_SIZES, network_performance="Up to 10 Gigabit", clock_ghz=3.4),
    InstanceType("m1.small", 1, 1740, current_generation=False, network_performance="Low",
                 max_network_interfaces=2, ipv4_per_interface=4, clock_ghz=1.0, hypervisor="xen",
                 threads_per_core=1),
    # Nimbo's Linux containers (libvirt-lxc hosts only: backend/libvirt/containers.py)
    *[InstanceType(f"c-{size}", vcpus, memory, threads_per_core=1, max_network_interfaces=1, ipv4_per_interface=1)
      for size, vcpus, memory in (("nano", 1, 256), ("small", 1, 1024), ("medium", 2, 2048))],
]
BUILTIN = [t if t.name not in ("t2.micro", "t3.micro") else
           InstanceType(**{**t.__dict__, "free_tier": True}) for t in BUILTIN]

_catalogues: dict[str | None, dict[str, InstanceType]] = {}


def catalogue(config: Any) -> dict[str, InstanceType]:
    """The instance types this server offers, by name (read once per catalogue file)."""
    path = getattr(config, "instance_types", None)
    if path not in _catalogues:
        _catalogues[path] = _load(path)
    return _catalogues[path]


def _load(path: str | None) -> dict[str, InstanceType]:
    types = {t.name: t for t in BUILTIN}
    if not path:
        return types
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    if not data.get("include_builtin", True):
        types = {}
    known = set(InstanceType.__dataclass_fields__) - {"name", "extra"}
    for name, spec in (data.get("types") or {}).items():
        values = {k: v for k, v in spec.items() if k in known}
        types[name] = InstanceType(name, **values)
    return types


def lookup(config: Any, name: str | None) -> InstanceType:
    types = catalogue(config)
    name = name or DEFAULT_INSTANCE_TYPE
    if name not in types:
        raise InvalidParameterValue(f"Invalid value '{name}' for InstanceType.")
    return types[name]


def describe_item(itype: InstanceType) -> dict:
    return {
        "InstanceType": itype.name,
        "CurrentGeneration": itype.current_generation,
        "FreeTierEligible": itype.free_tier,
        "SupportedUsageClasses": ["on-demand"],
        "SupportedRootDeviceTypes": ["ebs"],
        "SupportedVirtualizationTypes": ["hvm"],
        "BareMetal": False,
        "Hypervisor": itype.hypervisor,
        "ProcessorInfo": {"SupportedArchitectures": ["x86_64"], "SustainedClockSpeedInGhz": itype.clock_ghz,
                          "Manufacturer": itype.manufacturer},
        "VCpuInfo": {"DefaultVCpus": itype.vcpus, "DefaultCores": itype.core_count,
                     "DefaultThreadsPerCore": itype.threads,
                     "ValidCores": list(range(1, itype.core_count + 1)),
                     "ValidThreadsPerCore": sorted({1, itype.threads})},
        "MemoryInfo": {"SizeInMiB": itype.memory_mib},
        "InstanceStorageSupported": False,
        "EbsInfo": {"EbsOptimizedSupport": "default" if itype.hypervisor == "nitro" else "unsupported",
                    "EncryptionSupport": "supported",
                    "NvmeSupport": "required" if itype.hypervisor == "nitro" else "unsupported"},
        "NetworkInfo": {"NetworkPerformance": itype.network_performance,
                        "MaximumNetworkInterfaces": itype.max_network_interfaces,
                        "MaximumNetworkCards": 1, "DefaultNetworkCardIndex": 0,
                        "NetworkCards": [{"NetworkCardIndex": 0,
                                          "NetworkPerformance": itype.network_performance,
                                          "MaximumNetworkInterfaces": itype.max_network_interfaces}],
                        "Ipv4AddressesPerInterface": itype.ipv4_per_interface,
                        "Ipv6AddressesPerInterface": itype.ipv4_per_interface,
                        "Ipv6Supported": True, "EnaSupport": "required" if itype.hypervisor == "nitro"
                        else "unsupported", "EfaSupported": False,
                        "EncryptionInTransitSupported": False, "EnaSrdSupported": False},
        "PlacementGroupInfo": {"SupportedStrategies": ["partition", "spread"]
                               if itype.burstable else ["cluster", "partition", "spread"]},
        "HibernationSupported": False,
        "BurstablePerformanceSupported": itype.burstable,
        "DedicatedHostsSupported": not itype.burstable,
        "AutoRecoverySupported": True,
        "SupportedBootModes": ["legacy-bios", "uefi"] if itype.hypervisor == "nitro" else ["legacy-bios"],
        "NitroEnclavesSupport": "unsupported",
        "NitroTpmSupport": "unsupported",
        "PhcSupport": "unsupported",
    }


_TYPE_FILTERS = {
    "instance-type": lambda t: t["InstanceType"],
    "current-generation": lambda t: t["CurrentGeneration"],
    "free-tier-eligible": lambda t: t["FreeTierEligible"],
    "bare-metal": lambda t: t["BareMetal"],
    "burstable-performance-supported": lambda t: t["BurstablePerformanceSupported"],
    "dedicated-hosts-supported": lambda t: t["DedicatedHostsSupported"],
    "hibernation-supported": lambda t: t["HibernationSupported"],
    "hypervisor": lambda t: t["Hypervisor"],
    "instance-storage-supported": lambda t: t["InstanceStorageSupported"],
    "auto-recovery-supported": lambda t: t["AutoRecoverySupported"],
    "memory-info.size-in-mib": lambda t: t["MemoryInfo"]["SizeInMiB"],
    "vcpu-info.default-vcpus": lambda t: t["VCpuInfo"]["DefaultVCpus"],
    "vcpu-info.default-cores": lambda t: t["VCpuInfo"]["DefaultCores"],
    "vcpu-info.default-threads-per-core": lambda t: t["VCpuInfo"]["DefaultThreadsPerCore"],
    "vcpu-info.valid-cores": lambda t: t["VCpuInfo"]["ValidCores"],
    "vcpu-info.valid-threads-per-core": lambda t: t["VCpuInfo"]["ValidThreadsPerCore"],
    "processor-info.supported-architecture": lambda t: t["ProcessorInfo"]["SupportedArchitectures"],
    "processor-info.sustained-clock-speed-in-ghz": lambda t: t["ProcessorInfo"]["SustainedClockSpeedInGhz"],
    "processor-info.manufacturer": lambda t: t["ProcessorInfo"]["Manufacturer"],
    "supported-usage-class": lambda t: t["SupportedUsageClasses"],
    "supported-root-device-type": lambda t: t["SupportedRootDeviceTypes"],
    "supported-virtualization-type": lambda t: t["SupportedVirtualizationTypes"],
    "supported-boot-mode": lambda t: t["SupportedBootModes"],
    "network-info.network-performance": lambda t: t["NetworkInfo"]["NetworkPerformance"],
    "network-info.maximum-network-interfaces": lambda t: t["NetworkInfo"]["MaximumNetworkInterfaces"],
    "network-info.ipv4-addresses-per-interface": lambda t: t["NetworkInfo"]["Ipv4AddressesPerInterface"],
    "network-info.ipv6-supported": lambda t: t["NetworkInfo"]["Ipv6Supported"],
    "network-info.ena-support": lambda t: t["NetworkInfo"]["EnaSupport"],
    "network-info.efa-supported": lambda t: t["NetworkInfo"]["EfaSupported"],
    "ebs-info.ebs-optimized-support": lambda t: t["EbsInfo"]["EbsOptimizedSupport"],
    "ebs-info.encryption-support": lambda t: t["EbsInfo"]["EncryptionSupport"],
    "ebs-info.nvme-support": lambda t: t["EbsInfo"]["NvmeSupport"],
    "nitro-enclaves-support": lambda t: t["NitroEnclavesSupport"],
    "nitro-tpm-support": lambda t: t["NitroTpmSupport"],
}


async def describe_instance_types(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    max_results = check_max_results(params, 5, 100)
    types = catalogue(ctx.app.config)
    wanted = params.get("InstanceTypes") or []
    for name in wanted:
        if name not in types:
            raise InvalidInstanceType(f"The following supplied instance types do not exist: [{name}]")
    items = [describe_item(t) for name, t in types.items() if not wanted or name in wanted]
    items = apply_filters(items, params.get("Filters"), _TYPE_FILTERS)
    page, token = paginate(items, lambda t: t["InstanceType"], max_results, params.get("NextToken"),
                           maximum=100)
    return {"InstanceTypes": page, "NextToken": token}


async def describe_instance_type_offerings(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    max_results = check_max_results(params, 5, 1000)
    location_type = params.get("LocationType") or "region"
    zones = list(ctx.app.config.regions.get(ctx.region) or [])
    if location_type == "region":
        locations = [ctx.region]
    elif location_type == "availability-zone":
        locations = zones
    elif location_type == "availability-zone-id":
        locations = [zone_id(ctx.region, i) for i in range(len(zones))]
    else:
        raise InvalidParameterValue(f"Value ({location_type}) for parameter locationType is invalid.")
    items = [{"InstanceType": name, "LocationType": location_type, "Location": location}
             for name in catalogue(ctx.app.config) for location in locations]
    items = apply_filters(items, params.get("Filters"), {
        "instance-type": lambda o: o["InstanceType"],
        "location": lambda o: o["Location"],
    })
    page, token = paginate(items, lambda o: f"{o['Location']}\x00{o['InstanceType']}", max_results,
                           params.get("NextToken"))
    return {"InstanceTypeOfferings": page, "NextToken": token}
