// dom.js: building elements node by node, never from HTML strings, so text from the server
// (names, venues, audit targets) is always text, never markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

let nextID = 0;

// field is a labelled control: <label for> + control + an error line the
// control names in aria-describedby. Every control of the console is made
// here or carries its own label.
export function field(label, control, { hint, name } = {}) {
  if (!control.id) control.id = "f" + ++nextID;
  const err = h("p", { class: "err", id: control.id + "-err", role: "alert" });
  control.setAttribute("aria-describedby", err.id);
  if (name) control.dataset.field = name;
  return h("div", { class: "field" },
    h("label", { for: control.id, text: label }),
    control,
    hint ? h("small", { text: hint }) : null,
    err);
}

// input is a plain text-like input.
export function input(attrs) {
  return h("input", { type: "text", autocomplete: "off", ...attrs });
}

export function select(options, attrs = {}) {
  return h("select", attrs, options.map((o) =>
    typeof o === "string" ? h("option", { value: o, text: o }) : h("option", { value: o.value, text: o.label })));
}

export function button(text, onclick, attrs = {}) {
  return h("button", { type: "button", onclick, ...attrs }, text);
}

// table draws rows of objects; cols are [heading, (row) => cell].
export function table(caption, cols, rows, attrs = {}) {
  return h("table", attrs,
    h("caption", { text: caption }),
    h("thead", {}, h("tr", {}, cols.map(([t]) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, rows.map((r) => h("tr", {}, cols.map(([, f]) => h("td", {}, f(r)))))));
}

// clearErrors and showError put a problem next to its field.
export function clearErrors(form) {
  for (const e of form.querySelectorAll(".err")) e.textContent = "";
  for (const c of form.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
}

export function showError(control, text) {
  control.setAttribute("aria-invalid", "true");
  const err = document.getElementById(control.id + "-err");
  if (err) err.textContent = text;
}

// status is a line that screen readers announce when it changes.
export function status() {
  return h("p", { class: "status", role: "status", "aria-live": "polite" });
}

export function say(el, text, kind = "") {
  el.textContent = text;
  el.className = "status " + kind;
}

export function money(cents, currency) {
  return (Number(cents) / 100).toFixed(2) + " " + (currency || "");
}

export function when(s) {
  if (!s) return "";
  return s.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// download saves a blob under a file name.
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
