"""Server configuration: command-line flags over an optional TOML file over defaults.

A config file looks like::

    host = "0.0.0.0"
    port = 8773
    data_dir = "/var/lib/nimbo"
    s3_domain = "s3.nimbo.example"        # virtual-hosted-style: BUCKET.s3.nimbo.example
    max_instances = 20                    # EC2: instances per account and region (not terminated)
    host_vcpus = 64                       # EC2: the host's capacity (default: from the machine)
    host_memory_mib = 131072
    network = "auto"                      # EC2 data path: auto (taps in Nimbo's namespace when root), user, fake
    public_ip_pool = "198.18.0.0/24"      # EC2 public addresses (Elastic IPs, MapPublicIpOnLaunch): CIDRs, comma-separated
    network_host_access = false           # single host: route the pool from the host's shell into Nimbo's namespace
    s3_default_object_ownership = "BucketOwnerEnforced"   # new buckets: or BucketOwnerPreferred, ObjectWriter
    s3_default_block_public_access = true # new buckets: all four public access block settings on
    storage_min_free_mib = 128            # refuse new data below this much free disk space
    storage_reserve_mib = 16              # a file kept so deletes can commit on a full disk
    http_header_timeout = 20              # seconds for a request's headers (gateway.connection_limits)
    http_body_timeout = 30                # seconds a request body (or a response) may stall
    http_keepalive_timeout = 60           # seconds an idle connection is kept
    http_max_connections = 1024           # open connections (bounded by the descriptor limit)
    workers = 2                           # server processes on the one port (default: the cores)
    metadata = "postgresql://nimbo@db.example/nimbo"   # metadata on PostgreSQL (default: SQLite in data_dir)
    blob_dir = "/shared/nimbo-blobs"      # object data on a filesystem every gateway mounts (default: data_dir/blobs)
    cluster_address = "10.0.0.5:8780"     # where this gateway, when it leads EC2, hears the others (default: host, a free port)
    ec2_leader = false                    # this gateway only relays EC2 (default: it may lead; gateway.cluster)
    [regions]
    us-east-1 = ["us-east-1a", "us-east-1b", "us-east-1c"]
    eu-west-1 = ["eu-west-1a", "eu-west-1b"]
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

DEFAULT_REGION = "us-east-1"


class ConfigError(Exception):
    pass


def default_zones(region: str, count: int = 3) -> list[str]:
    return [f"{region}{chr(ord('a') + i)}" for i in range(count)]


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 8773
    data_dir: str = "nimbo-data"
    regions: dict[str, list[str]] = field(default_factory=lambda: {DEFAULT_REGION: default_zones(DEFAULT_REGION)})
    s3_domain: str = "s3.localhost"
    tls_cert: str | None = None
    tls_key: str | None = None
    public_endpoint: str | None = None
    max_request_body: int = 16 * 1024 * 1024
    s3_lifecycle_day_seconds: float = 86400.0   # S3 lifecycle: a pass per day; tests shorten the day
    s3_sse_c_over_http: bool = False   # SSE-C keys over plain HTTP from non-loopback clients
    s3_block_sse_c_by_default: bool = False   # S3 since April 2026: SSE-C only where unblocked
    meter_flush_seconds: float = 5.0
    access_log: bool = False           # one INFO line per request on the nimbo.access logger
    backend: str = "qemu"              # hypervisor driver: qemu, libvirt, or fake (tests)
    libvirt_uri: str = "qemu:///system"   # libvirt: the first compute host (more: `nimbo host add`)
    placement: str = "spread"          # libvirt hosts: spread (most free) or pack (fullest that fits)
    instance_types: str | None = None  # a TOML catalogue of instance types (default: built in)
    price_list: str | None = None      # a price list file (default: the shipped prices)
    host_vcpus: int | None = None      # EC2 capacity (default: cores x 8 vCPUs, 80% of RAM)
    host_memory_mib: int | None = None
    max_instances: int = 20            # instances (not terminated) per account and region: EC2's limit
    instance_stop_timeout: float = 60.0   # graceful stop before a forced one, seconds
    ec2_housekeeping_seconds: float = 60.0
    billing_interval_seconds: float = 60.0
    network: str = "auto"              # instance networking: auto, namespace, user (QEMU user-mode) or fake
    network_host_access: bool = False  # single host: route the public pool from the host into the namespace
    public_ip_pool: str = "198.18.0.0/24"   # public IPv4 addresses (CIDRs, comma-separated)
    max_elastic_ips: int = 5           # Elastic IPs per account and region: EC2's default quota
    s3_default_object_ownership: str = "BucketOwnerEnforced"   # new buckets' (s3_api.bucket_access)
    s3_default_block_public_access: bool = True
    storage_min_free_mib: float = 128.0   # new data refused below this free space (storage.space)
    storage_reserve_mib: float = 16.0     # released when the disk fills, so deletes still commit
    http_header_timeout: float = 20.0     # connection limits: gateway.connection_limits
    http_body_timeout: float = 30.0
    http_keepalive_timeout: float = 60.0
    http_max_connections: int = 1024
    workers: int | None = None         # `nimbo serve` processes (None: one per core; gateway.workers)
    metadata: str | None = None        # a postgresql:// URL (storage.metadata); None: data_dir/nimbo.db
    blob_dir: str | None = None        # object data (storage.blobs); None: data_dir/blobs
    cluster_address: str | None = None   # PostgreSQL: HOST:PORT the EC2 leader listens on for other gateways (gateway.cluster)
    ec2_leader: bool = True            # PostgreSQL: whether this gateway may become the cluster's EC2 leader

    @property
    def default_region(self) -> str:
        return next(iter(self.regions))

    @property
    def endpoint_url(self) -> str:
        if self.public_endpoint:
            return self.public_endpoint
        scheme = "https" if self.tls_cert else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{scheme}://{host}:{self.port}"

    def path(self, *parts: str) -> str:
        return os.path.join(self.data_dir, *parts)


def load_config(file: str | None = None, **overrides: Any) -> Config:
    """Defaults, then the TOML file (if any), then the flags that were given (not None)."""
    values: dict[str, Any] = {}
    if file:
        try:
            with open(file, "rb") as fh:
                values.update(tomllib.load(fh))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    region = overrides.pop("region", None)
    values.update({k: v for k, v in overrides.items() if v is not None})
    regions = values.pop("regions", None)
    known = set(Config.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
    config = Config(**values)
    if regions:
        if not isinstance(regions, dict) or not all(isinstance(z, list) for z in regions.values()):
            raise ConfigError("[regions] maps a region name to a list of availability zones")
        config.regions = {name: list(zones) or default_zones(name) for name, zones in regions.items()}
    if region:
        names = [r.strip() for r in region.split(",") if r.strip()]
        config.regions = {name: config.regions.get(name) or default_zones(name) for name in names}
    config.data_dir = os.path.abspath(config.data_dir)
    if config.blob_dir:
        config.blob_dir = os.path.abspath(config.blob_dir)
    return config
