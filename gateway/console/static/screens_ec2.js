/* Nimbo console: the EC2 screens (instances, images, key pairs, volumes and snapshots, security
   groups, addresses). Each is a view of EC2's own Describe* answers, each button one EC2 action. */
"use strict";

const SSH_USERS = [["debian", "admin"], ["ubuntu", "ubuntu"], ["amzn", "ec2-user"], ["tiny", "root"]];

function sshUser(image) {
  const name = ((image && (image.Name || image.Description)) || "").toLowerCase();
  for (const [word, user] of SSH_USERS) if (name.includes(word)) return user;
  return "root";
}

async function describeAll(operation, key, params) {
  const data = await api("ec2", operation, params || {});
  return data[key] || [];
}

/* ---- Instances ---- */
Nimbo.screens.instances = async function (main) {
  const [reservations, images, keyPairs, groups, types] = await Promise.all([
    describeAll("DescribeInstances", "Reservations"),
    describeAll("DescribeImages", "Images"),
    describeAll("DescribeKeyPairs", "KeyPairs"),
    describeAll("DescribeSecurityGroups", "SecurityGroups"),
    describeAll("DescribeInstanceTypes", "InstanceTypes").catch(() => []),
  ]);
  const instances = reservations.flatMap(r => r.Instances || []);
  const imageById = Object.fromEntries(images.map(i => [i.ImageId, i]));
  const typeNames = types.map(t => t.InstanceType).sort();
  const preferred = ["t3.micro", "t2.micro", "t3.small"].find(t => typeNames.includes(t)) || typeNames[0] || "t3.micro";

  const launch = h("form", {class: "inline", id: "launch-form"},
    h("label", {}, "Image", h("select", {name: "ImageId", required: true},
      images.map(i => h("option", {value: i.ImageId}, `${i.Name || i.ImageId} (${i.ImageId})`)))),
    h("label", {}, "Instance type", typeNames.length
      ? h("select", {name: "InstanceType"}, typeNames.map(t => h("option", {value: t, selected: t === preferred}, t)))
      : h("input", {name: "InstanceType", value: preferred})),
    h("label", {}, "Key pair", h("select", {name: "KeyName"}, h("option", {value: ""}, "(none)"),
      keyPairs.map(k => h("option", {value: k.KeyName}, k.KeyName)))),
    h("label", {}, "Security group", h("select", {name: "SecurityGroupId"}, h("option", {value: ""}, "(default)"),
      groups.map(g => h("option", {value: g.GroupId}, `${g.GroupName} (${g.GroupId})`)))),
    h("label", {}, "Name", h("input", {name: "Name", placeholder: "optional"})),
    h("button", {type: "submit", class: "primary"}, "Launch instance"));
  onSubmit(launch, async v => {
    const params = {ImageId: v.ImageId, InstanceType: v.InstanceType, MinCount: 1, MaxCount: 1};
    if (v.KeyName) params.KeyName = v.KeyName;
    if (v.SecurityGroupId) params.SecurityGroupIds = [v.SecurityGroupId];
    if (v.Name) params.TagSpecifications = [{ResourceType: "instance", Tags: [{Key: "Name", Value: v.Name}]}];
    const out = await api("ec2", "RunInstances", params);
    toast(`Launched ${out.Instances.map(i => i.InstanceId).join(", ")}`);
    route();
  });

  const details = h("div", {id: "instance-details"});
  const act = (label, op, id, extra) => action(label, () => api("ec2", op, {InstanceIds: [id]}), Object.assign({name: `${op}:${id}`}, extra || {}));
  const rows = instances.filter(i => i.State.Name !== "terminated" || true);
  const columns = [
    {title: "Instance", value: i => i.InstanceId},
    {title: "Name", value: i => tagValue(i.Tags, "Name")},
    {title: "State", value: i => stateBadge(i.State.Name)},
    {title: "Type", value: i => i.InstanceType},
    {title: "Image", value: i => i.ImageId},
    {title: "Private address", value: i => i.PrivateIpAddress || ""},
    {title: "Public address", value: i => i.PublicIpAddress || ""},
    {title: "Launched", value: i => (i.LaunchTime || "").replace("T", " ").replace(/\.\d+Z$|Z$/, "")},
    {title: "Actions", value: i => {
      const state = i.State.Name;
      if (state === "terminated") return "";
      return h("div", {class: "actions"},
        state === "stopped" ? act("Start", "StartInstances", i.InstanceId) : null,
        state === "running" ? act("Stop", "StopInstances", i.InstanceId) : null,
        state === "running" ? act("Reboot", "RebootInstances", i.InstanceId, {done: "Rebooting"}) : null,
        action("Console output", async () => {
          const out = await api("ec2", "GetConsoleOutput", {InstanceId: i.InstanceId});
          const text = out.Output ? atob(out.Output) : "(no output yet)";
          details.replaceChildren(h("h2", {}, `Console output of ${i.InstanceId}`), h("pre", {}, text));
        }, {keep: true, name: `console:${i.InstanceId}`}),
        action("Connect", async () => {
          const address = i.PublicIpAddress || i.PrivateIpAddress || "ADDRESS";
          const user = sshUser(imageById[i.ImageId]);
          const key = i.KeyName ? `${i.KeyName}.pem` : "YOUR-KEY.pem";
          details.replaceChildren(h("h2", {}, `Connect to ${i.InstanceId}`),
            h("p", {}, "From a machine that reaches the instance's address (on the Nimbo host as root: `nimbo net exec -- …` runs the command inside Nimbo's network):"),
            h("pre", {}, `chmod 600 ${key}\nssh -i ${key} ${user}@${address}`),
            i.KeyName ? "" : h("p", {class: "muted"}, "This instance was launched without a key pair."));
        }, {keep: true, name: `connect:${i.InstanceId}`}),
        act("Terminate", "TerminateInstances", i.InstanceId, {danger: true, confirm: `Terminate ${i.InstanceId}?`}));
    }},
  ];
  main.replaceChildren(h("h1", {}, "Instances"), launch, table(columns, rows, "No instances yet."), details);
  if (instances.some(i => ["pending", "stopping", "shutting-down"].includes(i.State.Name))) refreshSoon(1500);
};

/* ---- Images ---- */
Nimbo.screens.images = async function (main) {
  const images = await describeAll("DescribeImages", "Images");
  const own = Nimbo.actAs || Nimbo.session.AccountId;
  main.replaceChildren(h("h1", {}, "Images"), table([
    {title: "Image", value: i => i.ImageId},
    {title: "Name", value: i => i.Name || ""},
    {title: "State", value: i => stateBadge(i.State)},
    {title: "Architecture", value: i => i.Architecture || ""},
    {title: "Owner", value: i => i.ImageOwnerAlias || i.OwnerId},
    {title: "Public", value: i => (i.Public ? "yes" : "no")},
    {title: "Created", value: i => i.CreationDate || ""},
    {title: "Actions", value: i => i.OwnerId === own ? action("Deregister", () => api("ec2", "DeregisterImage", {ImageId: i.ImageId}),
                                                             {danger: true, confirm: `Deregister ${i.ImageId}?`}) : ""},
  ], images, "No images. `nimbo image build-tiny` registers a small public one."));
};

/* ---- Key pairs ---- */
Nimbo.screens["key-pairs"] = async function (main) {
  const keyPairs = await describeAll("DescribeKeyPairs", "KeyPairs");
  const create = h("form", {class: "inline", id: "create-key-pair"},
    h("label", {}, "Name", h("input", {name: "KeyName", required: true})),
    h("label", {}, "Type", h("select", {name: "KeyType"}, h("option", {value: "ed25519"}, "ed25519"), h("option", {value: "rsa"}, "rsa"))),
    h("button", {type: "submit", class: "primary"}, "Create and download"));
  onSubmit(create, async v => {
    const out = await api("ec2", "CreateKeyPair", {KeyName: v.KeyName, KeyType: v.KeyType});
    download(`${out.KeyName}.pem`, out.KeyMaterial, "application/x-pem-file");
    toast(`Key pair ${out.KeyName} created: its private key was downloaded once, Nimbo keeps no copy.`);
    route();
  });
  const importing = h("form", {class: "inline", id: "import-key-pair"},
    h("label", {}, "Name", h("input", {name: "KeyName", required: true})),
    h("label", {}, "Public key (OpenSSH)", h("textarea", {name: "PublicKey", rows: 2, cols: 50, required: true})),
    h("button", {type: "submit"}, "Import"));
  onSubmit(importing, async v => {
    const material = btoa(unescape(encodeURIComponent(v.PublicKey.trim())));
    await api("ec2", "ImportKeyPair", {KeyName: v.KeyName, PublicKeyMaterial: material});
    toast(`Imported ${v.KeyName}`);
    route();
  });
  main.replaceChildren(h("h1", {}, "Key pairs"), create, importing, table([
    {title: "Name", value: k => k.KeyName},
    {title: "Id", value: k => k.KeyPairId},
    {title: "Type", value: k => k.KeyType || ""},
    {title: "Fingerprint", value: k => k.KeyFingerprint},
    {title: "Actions", value: k => action("Delete", () => api("ec2", "DeleteKeyPair", {KeyName: k.KeyName}),
                                         {danger: true, confirm: `Delete key pair ${k.KeyName}?`})},
  ], keyPairs, "No key pairs."));
};

/* ---- Volumes and snapshots ---- */
Nimbo.screens.volumes = async function (main) {
  const [volumes, snapshots, zones, reservations] = await Promise.all([
    describeAll("DescribeVolumes", "Volumes"),
    describeAll("DescribeSnapshots", "Snapshots", {OwnerIds: ["self"]}),
    describeAll("DescribeAvailabilityZones", "AvailabilityZones"),
    describeAll("DescribeInstances", "Reservations"),
  ]);
  const instances = reservations.flatMap(r => r.Instances || []).filter(i => i.State.Name !== "terminated");
  const create = h("form", {class: "inline", id: "create-volume"},
    h("label", {}, "Size (GiB)", h("input", {name: "Size", type: "number", min: 1, value: 1, required: true})),
    h("label", {}, "Zone", h("select", {name: "AvailabilityZone"}, zones.map(z => h("option", {value: z.ZoneName}, z.ZoneName)))),
    h("label", {}, "Type", h("select", {name: "VolumeType"}, ["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"].map(t => h("option", {value: t}, t)))),
    h("button", {type: "submit", class: "primary"}, "Create volume"));
  onSubmit(create, async v => {
    await api("ec2", "CreateVolume", {Size: Number(v.Size), AvailabilityZone: v.AvailabilityZone, VolumeType: v.VolumeType});
    route();
  });
  const attachTo = vol => {
    const choices = instances.filter(i => i.Placement && i.Placement.AvailabilityZone === vol.AvailabilityZone);
    if (!choices.length) return null;
    const select = h("select", {"aria-label": `Instance for ${vol.VolumeId}`}, choices.map(i => h("option", {value: i.InstanceId}, i.InstanceId)));
    return h("span", {class: "actions"}, select, action("Attach", () =>
      api("ec2", "AttachVolume", {VolumeId: vol.VolumeId, InstanceId: select.value, Device: "/dev/sdf"})));
  };
  main.replaceChildren(h("h1", {}, "Volumes and snapshots"), create, table([
    {title: "Volume", value: v => v.VolumeId},
    {title: "Size (GiB)", num: true, value: v => v.Size},
    {title: "Type", value: v => v.VolumeType},
    {title: "Zone", value: v => v.AvailabilityZone},
    {title: "State", value: v => stateBadge(v.State)},
    {title: "Attached to", value: v => (v.Attachments || []).map(a => `${a.InstanceId} ${a.Device}`).join(", ")},
    {title: "Actions", value: v => h("div", {class: "actions"},
      v.State === "available" ? attachTo(v) : null,
      (v.Attachments || []).length ? action("Detach", () => api("ec2", "DetachVolume", {VolumeId: v.VolumeId})) : null,
      ["available", "in-use"].includes(v.State) ? action("Snapshot", () => api("ec2", "CreateSnapshot", {VolumeId: v.VolumeId}), {done: "Snapshot started"}) : null,
      v.State === "available" ? action("Delete", () => api("ec2", "DeleteVolume", {VolumeId: v.VolumeId}), {danger: true, confirm: `Delete ${v.VolumeId}?`}) : null)},
  ], volumes, "No volumes."),
  h("h2", {}, "Snapshots"), table([
    {title: "Snapshot", value: s => s.SnapshotId},
    {title: "Volume", value: s => s.VolumeId},
    {title: "Size (GiB)", num: true, value: s => s.VolumeSize},
    {title: "State", value: s => stateBadge(s.State)},
    {title: "Progress", value: s => s.Progress || ""},
    {title: "Started", value: s => s.StartTime || ""},
    {title: "Actions", value: s => action("Delete", () => api("ec2", "DeleteSnapshot", {SnapshotId: s.SnapshotId}), {danger: true, confirm: `Delete ${s.SnapshotId}?`})},
  ], snapshots, "No snapshots."));
  if (volumes.some(v => ["creating", "deleting"].includes(v.State)) || snapshots.some(s => s.State === "pending")) refreshSoon(2000);
};

/* ---- Security groups ---- */
function ruleText(permission) {
  const protocol = permission.IpProtocol === "-1" ? "all" : permission.IpProtocol;
  const ports = permission.FromPort === undefined || permission.FromPort === -1 ? "" :
    permission.FromPort === permission.ToPort ? ` ${permission.FromPort}` : ` ${permission.FromPort}-${permission.ToPort}`;
  const sources = [...(permission.IpRanges || []).map(r => r.CidrIp), ...(permission.Ipv6Ranges || []).map(r => r.CidrIpv6),
                   ...(permission.UserIdGroupPairs || []).map(p => p.GroupId)];
  return `${protocol}${ports} ← ${sources.join(", ") || "-"}`;
}

Nimbo.screens["security-groups"] = async function (main) {
  const groups = await describeAll("DescribeSecurityGroups", "SecurityGroups");
  const create = h("form", {class: "inline", id: "create-security-group"},
    h("label", {}, "Name", h("input", {name: "GroupName", required: true})),
    h("label", {}, "Description", h("input", {name: "Description", required: true})),
    h("button", {type: "submit", class: "primary"}, "Create security group"));
  onSubmit(create, async v => { await api("ec2", "CreateSecurityGroup", v); route(); });
  const addRule = g => {
    const form = h("form", {class: "actions"},
      h("select", {name: "IpProtocol", "aria-label": "Protocol"}, ["tcp", "udp", "icmp", "-1"].map(p => h("option", {value: p}, p === "-1" ? "all" : p))),
      h("input", {name: "Port", size: 9, placeholder: "22 or 80-90", "aria-label": "Ports"}),
      h("input", {name: "CidrIp", size: 14, value: "0.0.0.0/0", "aria-label": "Source CIDR"}),
      h("button", {type: "submit"}, "Allow"));
    onSubmit(form, async v => {
      const [from, to] = (v.Port || "-1").split("-").map(Number);
      await api("ec2", "AuthorizeSecurityGroupIngress", {GroupId: g.GroupId, IpPermissions: [{
        IpProtocol: v.IpProtocol, FromPort: from, ToPort: to === undefined ? from : to, IpRanges: [{CidrIp: v.CidrIp}]}]});
      route();
    });
    return form;
  };
  const rules = (g, permissions, op) => h("ul", {}, permissions.map(p => h("li", {}, ruleText(p), " ",
    action("Remove", () => api("ec2", op, {GroupId: g.GroupId, IpPermissions: [p]}), {danger: true}))));
  main.replaceChildren(h("h1", {}, "Security groups"), create, table([
    {title: "Group", value: g => g.GroupId},
    {title: "Name", value: g => g.GroupName},
    {title: "VPC", value: g => g.VpcId || ""},
    {title: "Inbound rules", value: g => h("div", {}, rules(g, g.IpPermissions || [], "RevokeSecurityGroupIngress"), addRule(g))},
    {title: "Outbound rules", value: g => rules(g, g.IpPermissionsEgress || [], "RevokeSecurityGroupEgress")},
    {title: "Actions", value: g => g.GroupName === "default" ? "" :
      action("Delete", () => api("ec2", "DeleteSecurityGroup", {GroupId: g.GroupId}), {danger: true, confirm: `Delete ${g.GroupName}?`})},
  ], groups, "No security groups."));
};

/* ---- Addresses ---- */
Nimbo.screens.addresses = async function (main) {
  const [addresses, reservations] = await Promise.all([
    describeAll("DescribeAddresses", "Addresses"),
    describeAll("DescribeInstances", "Reservations"),
  ]);
  const instances = reservations.flatMap(r => r.Instances || []).filter(i => !["terminated", "shutting-down"].includes(i.State.Name));
  const associate = a => {
    if (!instances.length) return null;
    const select = h("select", {"aria-label": `Instance for ${a.PublicIp}`}, instances.map(i => h("option", {value: i.InstanceId}, i.InstanceId)));
    return h("span", {class: "actions"}, select, action("Associate", () =>
      api("ec2", "AssociateAddress", {AllocationId: a.AllocationId, InstanceId: select.value})));
  };
  main.replaceChildren(h("h1", {}, "Addresses"),
    h("div", {class: "actions"}, action("Allocate address", () => api("ec2", "AllocateAddress", {Domain: "vpc"}), {primary: true})),
    table([
      {title: "Public address", value: a => a.PublicIp},
      {title: "Allocation", value: a => a.AllocationId},
      {title: "Instance", value: a => a.InstanceId || ""},
      {title: "Private address", value: a => a.PrivateIpAddress || ""},
      {title: "Actions", value: a => h("div", {class: "actions"},
        a.AssociationId ? action("Disassociate", () => api("ec2", "DisassociateAddress", {AssociationId: a.AssociationId})) : associate(a),
        a.AssociationId ? null : action("Release", () => api("ec2", "ReleaseAddress", {AllocationId: a.AllocationId}), {danger: true, confirm: `Release ${a.PublicIp}?`}))},
    ], addresses, "No addresses."));
};
