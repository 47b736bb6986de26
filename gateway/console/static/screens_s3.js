/* Nimbo console: the Buckets screen (buckets, objects by prefix, upload with progress, download,
   presigned links, the bucket's settings as S3's Get* operations answer them). */
"use strict";

function formatBytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n), unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

Nimbo.screens.buckets = async function (main, arg) {
  if (arg) return bucketScreen(main, arg);
  const buckets = (await api("s3", "ListBuckets")).Buckets || [];
  const create = h("form", {class: "inline", id: "create-bucket"},
    h("label", {}, "Bucket name", h("input", {name: "Bucket", required: true, pattern: "[a-z0-9][a-z0-9.\\-]{1,61}[a-z0-9]"})),
    h("button", {type: "submit", class: "primary"}, "Create bucket"));
  onSubmit(create, async v => {
    const params = {Bucket: v.Bucket};
    if (Nimbo.region && Nimbo.region !== "us-east-1") params.CreateBucketConfiguration = {LocationConstraint: Nimbo.region};
    await api("s3", "CreateBucket", params);
    toast(`Created ${v.Bucket}`);
    route();
  });
  main.replaceChildren(h("h1", {}, "Buckets"), create, table([
    {title: "Bucket", value: b => h("a", {href: `#buckets/${encodeURIComponent(b.Name)}`}, b.Name)},
    {title: "Created", value: b => b.CreationDate},
    {title: "Actions", value: b => action("Delete", () => api("s3", "DeleteBucket", {Bucket: b.Name}),
                                         {danger: true, confirm: `Delete the bucket ${b.Name}? It must be empty.`})},
  ], buckets, "No buckets yet."));
};

function uploadFile(bucket, key, file, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", `/console/api/object?${linkQuery({bucket, key})}`);
    for (const [name, value] of Object.entries(consoleHeaders())) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.addEventListener("progress", event => {
      if (event.lengthComputable) { progress.max = event.total; progress.value = event.loaded; }
    });
    xhr.addEventListener("load", () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, (data.Error || {}).Code || xhr.status, (data.Error || {}).Message || xhr.statusText));
    });
    xhr.addEventListener("error", () => reject(new Error("The upload failed (network).")));
    xhr.send(file);
  });
}

async function bucketScreen(main, arg) {
  const [bucket, ...prefixParts] = arg.split("/");
  const prefix = prefixParts.length ? prefixParts.join("/") : "";
  const listing = await api("s3", "ListObjectsV2", {Bucket: bucket, Prefix: prefix, Delimiter: "/", MaxKeys: 1000});
  const folders = (listing.CommonPrefixes || []).map(p => p.Prefix);
  const objects = listing.Contents || [];

  const crumbs = [h("a", {href: "#buckets"}, "Buckets"), " / ", h("a", {href: `#buckets/${encodeURIComponent(bucket)}`}, bucket)];
  let path = "";
  for (const part of prefix.split("/").filter(Boolean)) {
    path += `${part}/`;
    crumbs.push(" / ", h("a", {href: `#buckets/${encodeURIComponent(bucket)}/${path}`}, part));
  }

  const progress = h("progress", {value: 0, max: 1, id: "upload-progress", hidden: true});
  const upload = h("form", {class: "inline", id: "upload-form"},
    h("label", {}, "File", h("input", {type: "file", name: "file", required: true, multiple: true})),
    h("label", {}, "Key prefix", h("input", {name: "prefix", value: prefix})),
    h("button", {type: "submit", class: "primary"}, "Upload"), progress, h("span", {id: "upload-status", class: "muted"}));
  upload.addEventListener("submit", async event => {
    event.preventDefault();
    const files = [...upload.querySelector("input[type=file]").files];
    const into = upload.querySelector("input[name=prefix]").value;
    const status = upload.querySelector("#upload-status");
    progress.hidden = false;
    try {
      for (const file of files) {
        status.textContent = `Uploading ${file.name}…`;
        await uploadFile(bucket, `${into}${file.name}`, file, progress);
      }
      status.textContent = `Uploaded ${files.length} file(s).`;
      toast(status.textContent);
      route();
    } catch (error) {
      status.textContent = "";
      toast(error.message, true);
    }
  });

  const links = h("div", {id: "presigned"});
  const rows = [
    ...folders.map(p => ({folder: p})),
    ...objects.map(o => ({object: o})),
  ];
  const listingTable = table([
    {title: "Key", value: r => r.folder
      ? h("a", {href: `#buckets/${encodeURIComponent(bucket)}/${r.folder}`}, r.folder.slice(prefix.length))
      : r.object.Key.slice(prefix.length)},
    {title: "Size", num: true, value: r => r.folder ? "" : formatBytes(r.object.Size)},
    {title: "Last modified", value: r => r.folder ? "" : r.object.LastModified},
    {title: "Actions", value: r => r.folder ? "" : h("div", {class: "actions"},
      h("a", {href: `/console/api/object?${linkQuery({bucket, key: r.object.Key})}`, download: r.object.Key.split("/").pop(),
              "data-download": r.object.Key}, "Download"),
      action("Link", async () => {
        const out = await request("POST", "presign", {bucket, key: r.object.Key, expires: 3600});
        links.replaceChildren(h("h2", {}, `Presigned link to ${r.object.Key} (1 hour)`), h("p", {class: "secret"}, out.url),
          h("p", {class: "muted"}, "Anyone with this link can read the object until it expires."));
      }, {keep: true, name: `presign:${r.object.Key}`}),
      action("Delete", () => api("s3", "DeleteObject", {Bucket: bucket, Key: r.object.Key}),
             {danger: true, confirm: `Delete ${r.object.Key}?`}))},
  ], rows, "This prefix holds no objects.");

  const parts = [h("h1", {}, `Bucket ${bucket}`), h("div", {class: "crumbs"}, ...crumbs), upload, listingTable,
    listing.IsTruncated ? h("p", {class: "muted"}, "Showing the first 1000 keys.") : null, links,
    h("h2", {}, "Settings"), await bucketSettings(bucket)];
  main.replaceChildren(...parts.filter(Boolean));
}

/* The bucket's settings as S3's Get* operations answer (those Nimbo has); versioning can be
   switched here. */
async function bucketSettings(bucket) {
  const reads = [
    ["Location", "GetBucketLocation", o => o.LocationConstraint || "us-east-1"],
    ["Versioning", "GetBucketVersioning", o => o.Status || "never enabled"],
    ["Tags", "GetBucketTagging", o => (o.TagSet || []).map(t => `${t.Key}=${t.Value}`).join(", ") || "none"],
    ["Lifecycle", "GetBucketLifecycleConfiguration", o => `${(o.Rules || []).length} rule(s)`],
    ["Object lock", "GetObjectLockConfiguration", o => (o.ObjectLockConfiguration || {}).ObjectLockEnabled || "disabled"],
    ["Owner (ACL)", "GetBucketAcl", o => (o.Owner || {}).DisplayName || (o.Owner || {}).ID || ""],
    ["Encryption", "GetBucketEncryption", o => JSON.stringify(o.ServerSideEncryptionConfiguration || {})],
    ["CORS", "GetBucketCors", o => `${(o.CORSRules || []).length} rule(s)`],
    ["Policy", "GetBucketPolicy", o => o.Policy || ""],
  ];
  const results = await Promise.all(reads.map(([, op, show]) =>
    api("s3", op, {Bucket: bucket}).then(show, error => error.code === "UnknownOperation" ? null : `none (${error.code})`)));
  const list = h("dl", {class: "kv", id: "bucket-settings"});
  reads.forEach(([label], n) => { if (results[n] !== null) list.append(h("dt", {}, label), h("dd", {}, results[n])); });
  const versioning = results[1];
  const toggle = action(versioning === "Enabled" ? "Suspend versioning" : "Enable versioning", () =>
    api("s3", "PutBucketVersioning", {Bucket: bucket, VersioningConfiguration: {Status: versioning === "Enabled" ? "Suspended" : "Enabled"}}));
  return h("div", {}, list, h("div", {class: "actions"}, toggle));
}
