"""A suite that drives a live endpoint with real clients and validates every response against
botocore's output shapes: ``python -m conformance --help``; scenarios in ``scenarios/``."""
from conformance.registry import scenario

__all__ = ["scenario"]
