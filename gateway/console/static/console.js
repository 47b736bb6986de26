/* Nimbo console: the core (session, API calls, DOM helpers, screen routing).
   Every screen calls Nimbo's own operations through /console/api/call: the server runs the
   service's handler as the signed-in account, so what a screen shows is what the API says.
   No framework, no build step, nothing loaded from another site. */
"use strict";

const Nimbo = {
  session: null,      // {AccountId, Name, IsAdmin, AccessKeyId, CsrfToken, Regions, Region, Endpoint}
  actAs: "",          // the admin: the account whose resources the screens show ("" = its own)
  region: "",
  screens: {},        // name -> async function(main, arg)
  timers: [],
};

/* ---- DOM helpers: text is always set as text, never parsed as HTML ---- */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function table(columns, rows, empty) {
  if (!rows.length) return h("p", {class: "muted"}, empty || "None.");
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(c => h("th", {scope: "col", class: c.num ? "num" : null}, c.title)))),
    h("tbody", {}, rows.map(row => h("tr", {}, columns.map(c => {
      const value = c.value(row);
      return h("td", {class: c.num ? "num" : null}, value === undefined || value === null ? "" : value);
    })))));
}

function stateBadge(state) {
  return h("span", {class: `state state-${state}`}, state);
}

function tagValue(tags, key) {
  const found = (tags || []).find(t => t.Key === key);
  return found ? found.Value : "";
}

function toast(message, isError) {
  const box = document.getElementById("toast");
  const item = h("div", {class: isError ? "error" : null, role: isError ? "alert" : null}, message);
  box.append(item);
  setTimeout(() => item.remove(), isError ? 9000 : 4000);
}

function formValues(form) {
  const values = {};
  for (const [name, value] of new FormData(form).entries()) values[name] = value;
  return values;
}

function download(filename, text, type) {
  const url = URL.createObjectURL(new Blob([text], {type: type || "application/octet-stream"}));
  const link = h("a", {href: url, download: filename});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/* ---- the server ---- */
class ApiError extends Error {
  constructor(status, code, message) { super(`${code}: ${message}`); this.status = status; this.code = code; }
}

function consoleHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  if (Nimbo.session) headers["X-CSRF-Token"] = Nimbo.session.CsrfToken;
  if (Nimbo.actAs) headers["X-Nimbo-Account"] = Nimbo.actAs;
  if (Nimbo.region) headers["X-Nimbo-Region"] = Nimbo.region;
  return headers;
}

async function request(method, path, body) {
  const init = {method, headers: consoleHeaders(), credentials: "same-origin"};
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(`/console/api/${path}`, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.Error || {Code: String(response.status), Message: response.statusText};
    if (response.status === 401 && path !== "sign-in") { showSignIn(); }
    throw new ApiError(response.status, error.Code, error.Message);
  }
  return data;
}

/* An API operation, run by Nimbo's own handler as the signed-in account. */
function api(service, operation, params) {
  return request("POST", "call", {service, operation, params: params || {}});
}

/* A query string for links (downloads) that cannot carry headers. */
function linkQuery(params) {
  const all = Object.assign({}, params);
  if (Nimbo.actAs) all.as = Nimbo.actAs;
  if (Nimbo.region) all.region = Nimbo.region;
  return new URLSearchParams(all).toString();
}

/* Run an action from a button: disabled while it runs, errors shown, the screen redrawn. */
function action(label, run, opts) {
  const options = opts || {};
  const button = h("button", {type: "button", class: options.danger ? "danger" : options.primary ? "primary" : null,
                              "data-action": options.name || label}, label);
  button.addEventListener("click", async () => {
    if (options.confirm && !window.confirm(options.confirm)) return;
    button.disabled = true;
    try {
      const result = await run();
      if (options.done) toast(options.done);
      if (!options.keep) route();
      return result;
    } catch (error) {
      toast(error.message, true);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function onSubmit(form, run) {
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    if (submit) submit.disabled = true;
    try { await run(formValues(form)); }
    catch (error) { toast(error.message, true); }
    finally { if (submit) submit.disabled = false; }
  });
  return form;
}

/* ---- sign-in, the header, routing ---- */
function showSignIn(message) {
  Nimbo.session = null;
  Nimbo.shown = null;
  Nimbo.draws = (Nimbo.draws || 0) + 1;   // a draw under way is not shown over the form
  document.getElementById("nav").hidden = true;
  document.getElementById("who").replaceChildren();
  const main = document.getElementById("main");
  const form = h("form", {class: "stack", id: "sign-in", autocomplete: "off"},
    h("h1", {}, "Sign in to Nimbo"),
    h("p", {class: "muted"}, "With an access key: `nimbo credentials` prints the admin's; `nimbo admin create-key ACCOUNT` makes one for a tenant. The secret is sent once, to start a session; the browser keeps only a session cookie."),
    message ? h("p", {class: "error", role: "alert"}, message) : null,
    h("label", {}, "Access key id", h("input", {name: "accessKeyId", required: true, autocomplete: "username", spellcheck: "false"})),
    h("label", {}, "Secret access key", h("input", {name: "secretAccessKey", type: "password", required: true, autocomplete: "current-password"})),
    h("button", {type: "submit", class: "primary"}, "Sign in"));
  onSubmit(form, async values => {
    try {
      await request("POST", "sign-in", values);
    } catch (error) {
      showSignIn(error.message);
      return;
    }
    await start();
  });
  main.replaceChildren(form);
}

async function signOut() {
  try { await request("POST", "sign-out"); } catch (error) { /* signed out already */ }
  Nimbo.actAs = "";
  showSignIn("Signed out.");
}

async function drawHeader() {
  const s = Nimbo.session;
  const who = document.getElementById("who");
  const parts = [h("span", {id: "signed-in-as"}, `${s.Name} (${s.AccountId})${s.IsAdmin ? " · admin" : ""}`)];
  if (s.Regions.length > 1) {
    const regions = h("select", {"aria-label": "Region"}, s.Regions.map(r => h("option", {value: r, selected: r === Nimbo.region}, r)));
    regions.addEventListener("change", () => { Nimbo.region = regions.value; route(); });
    parts.push(regions);
  }
  if (s.IsAdmin) {
    const accounts = (await request("GET", "accounts")).Accounts;
    const select = h("select", {"aria-label": "Act as account", id: "act-as"},
      accounts.map(a => h("option", {value: a.AccountId === s.AccountId ? "" : a.AccountId,
                                     selected: (a.AccountId === s.AccountId ? "" : a.AccountId) === Nimbo.actAs},
                          a.AccountId === s.AccountId ? `${a.Name} (own resources, all accounts' costs)` : `${a.Name} (${a.AccountId})`)));
    select.addEventListener("change", () => { Nimbo.actAs = select.value; route(); });
    parts.push(h("label", {class: "muted"}, "Account ", select));
  }
  parts.push(h("button", {type: "button", id: "sign-out", onclick: signOut}, "Sign out"));
  who.replaceChildren(...parts);
}

function currentHash() {
  return decodeURIComponent(location.hash.replace(/^#/, "")) || "instances";
}

/* Draw the screen the address names. A screen draws into a detached container that replaces the
   page only if no later draw started meanwhile, so two draws never interleave. */
async function route() {
  for (const timer of Nimbo.timers) clearTimeout(timer);
  Nimbo.timers = [];
  if (!Nimbo.session) return;
  const hash = currentHash();
  const draw = (Nimbo.draws = (Nimbo.draws || 0) + 1);
  const [name, ...rest] = hash.split("/");
  const screen = Nimbo.screens[name] || Nimbo.screens.instances;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const main = document.getElementById("main");
  const view = document.createElement("div");
  try {
    await screen(view, rest.join("/"));
  } catch (error) {
    if (error.status === 401) return;
    view.replaceChildren(h("p", {class: "error", role: "alert"}, error.message));
  }
  if (draw !== Nimbo.draws) return;       // a later draw wins
  main.replaceChildren(...view.childNodes);
  Nimbo.shown = hash;
}

/* Redraw the current screen after a while (instances changing state). */
function refreshSoon(ms) {
  Nimbo.timers.push(setTimeout(route, ms || 2000));
}

async function start() {
  try {
    Nimbo.session = await request("GET", "session");
  } catch (error) {
    showSignIn();
    return;
  }
  Nimbo.region = Nimbo.region || Nimbo.session.Region;
  document.getElementById("nav").hidden = false;
  await drawHeader();
  await route();
}

window.addEventListener("hashchange", () => { if (currentHash() !== Nimbo.shown) route(); });
window.addEventListener("DOMContentLoaded", start);
