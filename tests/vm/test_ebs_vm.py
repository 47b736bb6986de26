"""EBS on a real VM (QEMU driver, tiny image, TCG where there is no hardware virtualisation): one
instance, two boots.

The guest's user data watches /sys/block for a bounded time and reports every disk it sees on the
serial console with its virtio serial, its size and the marker in its first sector; a blank data
disk gets a marker written (raw dd, then sync). The test then checks, through boto3:

- the root disk's serial is the root volume's id without the dash (as Nitro shows it);
- AttachVolume hot-plugs a volume into the running guest, which sees its serial (timed);
- ModifyVolume grows an attached volume online (QMP block_resize): the guest sees the new size;
- CreateSnapshot of the attached volume (a QMP internal snapshot, exported in the background; timed),
  a volume made from it and attached holds the marker written before the snapshot;
- after a stop and a start, the volumes are attached again and their data is still there;
- DetachVolume unplugs a volume from the running guest; terminate leaves attached data volumes
  ``available`` (DeleteOnTermination false) and deletes the root volume.
"""
from __future__ import annotations

import os
import re
import time

import pytest

from tests.vm.test_real_vm import INSTANCE_TYPE, WAIT, console, console_until, vm_cloud, wait_gone  # noqa: F401

pytestmark = pytest.mark.vm

# Bounded: 900 rounds of ~1 s. Reports a disk again when its size or marker changes.
WATCH_DISKS = r"""#!/bin/sh
seen=" "
i=0
while [ $i -lt 900 ]; do
    i=$((i + 1))
    for d in /sys/block/vd*; do
        [ -e "$d" ] || continue
        n=${d##*/}
        s=$(cat "$d/serial" 2>/dev/null)
        [ -b "/dev/$n" ] || continue
        m=$(dd if="/dev/$n" bs=512 count=1 2>/dev/null | head -c 40 | tr -cd 'A-Za-z0-9-')
        if [ "$n" != vda ] && [ -z "$m" ]; then
            printf 'NIMBO-EBS-%s\n' "$s" | dd of="/dev/$n" bs=512 count=1 conv=sync 2>/dev/null
            sync
            echo "EBS-WROTE $n $s"
            m=$(dd if="/dev/$n" bs=512 count=1 2>/dev/null | head -c 40 | tr -cd 'A-Za-z0-9-')
        fi
        key="$n:$s:$(cat "$d/size"):$m"
        case "$seen" in
            *" $key "*) ;;
            *) seen="$seen$key "; echo "EBS-DISK $n serial=$s sectors=$(cat "$d/size") marker=[$m]" ;;
        esac
    done
    sleep 1
done
"""


def disk_line(ec2, instance_id: str, serial: str, what: str = "", count: int = 1, timeout: float = 120) -> str:
    """The console line reporting the disk whose serial is ``serial`` (containing ``what``)."""
    deadline = time.monotonic() + timeout
    pattern = re.compile(rf"EBS-DISK (vd[a-z]+) serial={serial} sectors=(\d+) marker=\[([^\]]*)\]")
    while True:
        lines = [m for m in pattern.finditer(console(ec2, instance_id)) if what in m.group(0)]
        if len(lines) >= count:
            return lines[count - 1].group(0)
        assert time.monotonic() < deadline, f"the guest did not report {serial} {what!r}:\n" \
                                            f"{console(ec2, instance_id)[-3000:]}"
        time.sleep(0.25)


def test_volumes_on_a_running_guest(vm_cloud):
    ec2 = vm_cloud.client()
    out = ec2.run_instances(ImageId=vm_cloud.image_id, MinCount=1, MaxCount=1, InstanceType=INSTANCE_TYPE,
                            UserData=WATCH_DISKS)
    instance = out["Instances"][0]
    instance_id, zone = instance["InstanceId"], instance["Placement"]["AvailabilityZone"]
    root_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    console_until(ec2, instance_id, "nimbo-init: running user-data")
    assert "vda" in disk_line(ec2, instance_id, root_id.replace("-", ""))   # Nitro's serial

    # AttachVolume: hot-plugged, the guest sees the serial; it writes a marker on the blank disk
    vol_a = ec2.create_volume(AvailabilityZone=zone, Size=1, VolumeType="gp3")["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol_a], WaiterConfig=WAIT)
    serial_a = vol_a.replace("-", "")
    started = time.monotonic()
    ec2.attach_volume(VolumeId=vol_a, InstanceId=instance_id, Device="/dev/sdf")
    while ec2.describe_volumes(VolumeIds=[vol_a])["Volumes"][0]["Attachments"][0]["State"] != "attached":
        assert time.monotonic() - started < 60
        time.sleep(0.05)
    attached = time.monotonic() - started
    line = disk_line(ec2, instance_id, serial_a, f"marker=[NIMBO-EBS-{serial_a}]")
    in_guest = time.monotonic() - started
    assert "sectors=2097152" in line
    print(f"\nAttachVolume -> attached {attached:.2f}s, -> seen and written by the guest {in_guest:.2f}s "
          f"(the guest polls once a second)")

    # ModifyVolume online: QMP block_resize, the guest sees 2 GiB
    ec2.modify_volume(VolumeId=vol_a, Size=2)
    disk_line(ec2, instance_id, serial_a, "sectors=4194304", timeout=60)

    # CreateSnapshot of the attached, running volume; a volume from it holds the marker
    started = time.monotonic()
    snapshot_id = ec2.create_snapshot(VolumeId=vol_a, Description="vm test")["SnapshotId"]
    answered = time.monotonic() - started
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot_id], WaiterConfig=WAIT)
    completed = time.monotonic() - started
    print(f"CreateSnapshot answered in {answered:.3f}s (point in time frozen), completed in {completed:.2f}s "
          f"(2 GiB volume, a few KiB written)")
    vol_b = ec2.create_volume(AvailabilityZone=zone, SnapshotId=snapshot_id)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol_b], WaiterConfig=WAIT)
    ec2.attach_volume(VolumeId=vol_b, InstanceId=instance_id, Device="/dev/sdg")
    line = disk_line(ec2, instance_id, vol_b.replace("-", ""))
    assert f"marker=[NIMBO-EBS-{serial_a}]" in line, line      # the data of the point in time
    assert "sectors=4194304" in line

    # CreateSnapshots: the root and both data volumes at one instant (one QMP transaction)
    started = time.monotonic()
    crash_set = ec2.create_snapshots(InstanceSpecification={"InstanceId": instance_id})["Snapshots"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[s["SnapshotId"] for s in crash_set], WaiterConfig=WAIT)
    assert sorted(s["VolumeId"] for s in crash_set) == sorted([root_id, vol_a, vol_b])
    print(f"CreateSnapshots of 3 volumes (root included) completed in {time.monotonic() - started:.2f}s")

    # stop and start: both volumes come back attached, with their data
    pid = vm_cloud.qemu_pid(instance_id)
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    wait_gone(pid)
    ec2.start_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    console_until(ec2, instance_id, "nimbo-init: running user-data", count=2)
    assert f"marker=[NIMBO-EBS-{serial_a}]" in disk_line(ec2, instance_id, serial_a, "NIMBO-EBS", count=2)
    assert f"marker=[NIMBO-EBS-{serial_a}]" in disk_line(ec2, instance_id, vol_b.replace("-", ""), count=2)

    # DetachVolume from the running guest
    ec2.detach_volume(VolumeId=vol_b)
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol_b], WaiterConfig=WAIT)
    spec_path = os.path.join(vm_cloud.data_dir, "vms", instance_id, "spec.json")
    assert vol_b.replace("-", "") not in open(spec_path).read()

    # terminate: the root volume goes, the data volume stays
    pid = vm_cloud.qemu_pid(instance_id)
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    wait_gone(pid)
    assert ec2.describe_volumes(VolumeIds=[vol_a])["Volumes"][0]["State"] == "available"
    assert not ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [root_id]}])["Volumes"]
    for volume_id in (vol_a, vol_b):
        ec2.delete_volume(VolumeId=volume_id)
    for sid in [snapshot_id] + [s["SnapshotId"] for s in crash_set]:
        ec2.delete_snapshot(SnapshotId=sid)
