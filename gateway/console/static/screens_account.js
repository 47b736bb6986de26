/* Nimbo console: Account (access keys; for the admin, accounts and every account's keys). */
"use strict";

Nimbo.screens.account = async function (main) {
  const s = Nimbo.session;
  const managed = s.IsAdmin && Nimbo.actAs ? Nimbo.actAs : s.AccountId;
  const [keysOut, accountsOut] = await Promise.all([
    request("GET", `keys?${new URLSearchParams({account: managed})}`),
    request("GET", "accounts"),
  ]);
  const accountName = (accountsOut.Accounts.find(a => a.AccountId === managed) || {}).Name || managed;
  const fresh = h("div", {id: "new-key"});
  const keyRows = keysOut.AccessKeys;
  const parts = [
    h("h1", {}, "Account"),
    h("dl", {class: "kv"}, h("dt", {}, "Signed in as"), h("dd", {}, `${s.Name} (${s.AccountId})`),
      h("dt", {}, "With key"), h("dd", {}, s.AccessKeyId),
      h("dt", {}, "Session ends"), h("dd", {}, new Date(s.ExpiresAt * 1000).toISOString()),
      h("dt", {}, "Endpoint"), h("dd", {}, s.Endpoint)),
    h("h2", {}, `Access keys of ${accountName} (${managed})`),
    h("div", {class: "actions"}, action("Create access key", async () => {
      const out = await request("POST", "keys", {account: managed});
      const k = out.AccessKey;
      fresh.replaceChildren(h("h2", {}, "New access key: copy the secret now, it is not shown again"),
        h("pre", {}, `export AWS_ENDPOINT_URL=${s.Endpoint}\nexport AWS_ACCESS_KEY_ID=${k.AccessKeyId}\nexport AWS_SECRET_ACCESS_KEY=${k.SecretAccessKey}`));
    }, {primary: true, keep: true, name: "create-key"})),
    fresh,
    table([
      {title: "Access key id", value: k => k.AccessKeyId},
      {title: "Status", value: k => stateBadge(k.Status)},
      {title: "Created", value: k => new Date(k.CreateDate * 1000).toISOString()},
      {title: "Actions", value: k => k.AccessKeyId === s.AccessKeyId ? h("span", {class: "muted"}, "this session's key") : h("div", {class: "actions"},
        action(k.Status === "Active" ? "Disable" : "Enable", () => request("POST", "key-status",
          {accessKeyId: k.AccessKeyId, status: k.Status === "Active" ? "Inactive" : "Active"})),
        action("Delete", () => request("POST", "key-delete", {accessKeyId: k.AccessKeyId}),
               {danger: true, confirm: `Delete ${k.AccessKeyId} for good?`}))},
    ], keyRows, "No access keys."),
  ];
  if (s.IsAdmin) {
    const overview = Object.fromEntries((await request("GET", "overview")).Accounts.map(a => [a.AccountId, a]));
    const create = h("form", {class: "inline", id: "create-account"},
      h("label", {}, "New account name", h("input", {name: "name", required: true})),
      h("button", {type: "submit", class: "primary"}, "Create account"));
    onSubmit(create, async v => {
      const out = await request("POST", "accounts", {name: v.name});
      toast(`Created account ${out.Account.Name} (${out.Account.AccountId}); give it a key from its Account screen.`);
      await drawHeader();
      route();
    });
    parts.push(h("h2", {}, "Accounts"), create, table([
      {title: "Account", value: a => a.AccountId},
      {title: "Name", value: a => a.Name},
      {title: "Role", value: a => (a.IsAdmin ? "admin" : "tenant")},
      {title: "Instances (running)", num: true, value: a => overview[a.AccountId] ? `${overview[a.AccountId].Instances} (${overview[a.AccountId].Running})` : ""},
      {title: "Volumes", num: true, value: a => (overview[a.AccountId] || {}).Volumes},
      {title: "Buckets", num: true, value: a => (overview[a.AccountId] || {}).Buckets},
      {title: "", value: a => a.AccountId === managed ? h("span", {class: "muted"}, "shown") :
        action("Manage", async () => { Nimbo.actAs = a.AccountId === s.AccountId ? "" : a.AccountId; await drawHeader(); }, {name: `manage:${a.AccountId}`})},
    ], accountsOut.Accounts));
  }
  main.replaceChildren(...parts);
};
