"""EC2 resource ids: ``i-`` + 17 hex digits and friends, made and checked in one place.

EC2 tells a malformed id from a missing one: ``i-xyz`` is ``InvalidInstanceID.Malformed``
(``Invalid id: "i-xyz"``), a well-formed id that names nothing is ``InvalidInstanceID.NotFound``.
``check_request_ids`` makes the first check for every action from its input members
(``ID_MEMBERS``), before the handler runs; handlers answer ``.NotFound``.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from ec2_api.errors import ec2_error

_ID_RE = re.compile(r"^([a-z]+(?:-[a-z]+)*)-([0-9a-f]{8}|[0-9a-f]{17})$")


def new_id(prefix: str) -> str:
    """A fresh id in AWS's long form: ``<prefix>-`` + 17 lower-case hex digits."""
    return f"{prefix}-{secrets.token_hex(9)[:17]}"


def prefix_of(resource_id: str) -> str | None:
    """The prefix of a well-formed id (``i``, ``ami``, ``import-ami`` ...), else None."""
    match = _ID_RE.match(resource_id or "")
    return match.group(1) if match else None


def is_valid(resource_id: str, *prefixes: str) -> bool:
    return prefix_of(resource_id) in prefixes


InvalidInstanceIDMalformed = ec2_error("InvalidInstanceID.Malformed")
InvalidAMIIDMalformed = ec2_error("InvalidAMIID.Malformed")
InvalidKeyPairIDMalformed = ec2_error("InvalidKeyPair.Malformed")
InvalidID = ec2_error("InvalidID")


InvalidVpcIDMalformed = ec2_error("InvalidVpcID.Malformed")
InvalidSubnetIDMalformed = ec2_error("InvalidSubnetID.Malformed")
InvalidGroupIdMalformed = ec2_error("InvalidGroupId.Malformed")
InvalidVolumeIDMalformed = ec2_error("InvalidVolumeID.Malformed")
InvalidSnapshotIDMalformed = ec2_error("InvalidSnapshotID.Malformed")
InvalidNetworkInterfaceIDMalformed = ec2_error("InvalidNetworkInterfaceID.Malformed")
InvalidAllocationIDMalformed = ec2_error("InvalidAllocationID.Malformed")
InvalidRouteTableIdMalformed = ec2_error("InvalidRouteTableId.Malformed")


@dataclass(frozen=True)
class IdKind:
    prefixes: tuple[str, ...]
    malformed: type
    expecting: bool = True      # EC2 adds '(expecting "sg-...")' to the message, except for instances

    def check(self, value: str) -> None:
        if not is_valid(value, *self.prefixes):
            hint = f' (expecting "{self.prefixes[0]}-...")' if self.expecting else ""
            raise self.malformed(f'Invalid id: "{value}"{hint}')


INSTANCE = IdKind(("i",), InvalidInstanceIDMalformed, expecting=False)
IMAGE = IdKind(("ami", "aki", "ari"), InvalidAMIIDMalformed)
VPC = IdKind(("vpc",), InvalidVpcIDMalformed)
SUBNET = IdKind(("subnet",), InvalidSubnetIDMalformed)
SECURITY_GROUP = IdKind(("sg",), InvalidGroupIdMalformed)
VOLUME = IdKind(("vol",), InvalidVolumeIDMalformed)
SNAPSHOT = IdKind(("snap",), InvalidSnapshotIDMalformed)
KEY_PAIR = IdKind(("key",), InvalidKeyPairIDMalformed)
NETWORK_INTERFACE = IdKind(("eni",), InvalidNetworkInterfaceIDMalformed)
ALLOCATION = IdKind(("eipalloc",), InvalidAllocationIDMalformed)
ROUTE_TABLE = IdKind(("rtb",), InvalidRouteTableIdMalformed)

# Top-level input members that hold resource ids, by member name, in every EC2 action.
ID_MEMBERS: dict[str, IdKind] = {
    "InstanceId": INSTANCE, "InstanceIds": INSTANCE,
    "ImageId": IMAGE, "ImageIds": IMAGE,
    "VpcId": VPC, "VpcIds": VPC,
    "SubnetId": SUBNET, "SubnetIds": SUBNET,
    "GroupId": SECURITY_GROUP, "GroupIds": SECURITY_GROUP, "SecurityGroupIds": SECURITY_GROUP,
    "VolumeId": VOLUME, "VolumeIds": VOLUME,
    "SnapshotId": SNAPSHOT, "SnapshotIds": SNAPSHOT,
    "KeyPairId": KEY_PAIR, "KeyPairIds": KEY_PAIR,
    "NetworkInterfaceId": NETWORK_INTERFACE, "NetworkInterfaceIds": NETWORK_INTERFACE,
    "AllocationId": ALLOCATION, "AllocationIds": ALLOCATION,
    "RouteTableId": ROUTE_TABLE, "RouteTableIds": ROUTE_TABLE,
}
# Actions where a member above names something else (a placement group's GroupId is ``pg-``).
ID_MEMBER_EXCEPTIONS: dict[str, frozenset[str]] = {
    "DescribePlacementGroups": frozenset({"GroupIds"}),
    "ModifyInstancePlacement": frozenset({"GroupId"}),
}
# RunInstances and friends accept a Systems Manager parameter in place of an AMI id.
_SSM_IMAGE = "resolve:ssm:"


def check_request_ids(action: str, params: dict) -> None:
    """Refuse a malformed id in any top-level id member of ``action``'s input, as EC2 does
    (``InvalidInstanceID.Malformed`` ...), before the handler looks anything up."""
    skipped = ID_MEMBER_EXCEPTIONS.get(action, frozenset())
    for member, value in params.items():
        kind = ID_MEMBERS.get(member)
        if kind is None or member in skipped or value is None:
            continue
        for item in value if isinstance(value, list) else (value,):
            if not isinstance(item, str) or not item:
                continue        # an empty id is the handler's MissingParameter
            if kind is IMAGE and item.startswith(_SSM_IMAGE):
                continue
            kind.check(item)


def check_instance_ids(ids: list[str]) -> None:
    for value in ids:
        if not is_valid(value, "i"):
            raise InvalidInstanceIDMalformed(f'Invalid id: "{value}"')


def check_image_ids(ids: list[str]) -> None:
    for value in ids:
        if not is_valid(value, "ami", "aki", "ari"):
            raise InvalidAMIIDMalformed(f'Invalid id: "{value}" (expecting "ami-...")')
