"""The instance network data path: what EC2's networking API says, made true in packets.

``model`` is the contract between ``ec2_api`` (which computes the desired state from its tables)
and the data path here (which makes the kernel match it: a network namespace of Nimbo's own,
bridges, taps, DHCP, nftables). Nothing here knows HTTP or AWS wire formats.
"""
