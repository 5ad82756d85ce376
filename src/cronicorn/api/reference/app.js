// Cronicorn API reference: renders the OpenAPI document at ./doc, with a small "try it" form.
"use strict";
const $ = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) k === "text" ? (el.textContent = v) : el.setAttribute(k, v);
  for (const kid of kids) if (kid) el.append(kid);
  return el;
};
const keyInput = document.getElementById("apikey");
keyInput.value = sessionStorage.getItem("cronicorn-api-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("cronicorn-api-key", keyInput.value));

function resolve(doc, schema) {
  if (schema && schema.$ref) return doc.components.schemas[schema.$ref.split("/").pop()] || {};
  return schema || {};
}

function example(doc, schema, depth = 0) {
  schema = resolve(doc, schema);
  if (depth > 4) return null;
  if (schema.default !== undefined) return schema.default;
  if (schema.anyOf) return example(doc, schema.anyOf[0], depth + 1);
  if (schema.enum) return schema.enum[0];
  if (schema.type === "object" || schema.properties) {
    const out = {};
    for (const name of schema.required || []) out[name] = example(doc, schema.properties[name], depth + 1);
    return out;
  }
  return { string: "", integer: 0, number: 0, boolean: false, array: [] }[schema.type] ?? null;
}

function operation(doc, server, method, path, op) {
  const params = op.parameters || [];
  const inputs = params.map((p) => [p, $("input", { class: "param", placeholder: p.required ? "required" : "optional" })]);
  const bodySchema = op.requestBody?.content?.["application/json"]?.schema;
  const body = bodySchema ? $("textarea", {}) : null;
  if (body) body.value = JSON.stringify(example(doc, bodySchema), null, 2);
  const out = $("pre", { text: "" });
  const send = $("button", { text: "Send" });
  send.addEventListener("click", async () => {
    let url = server + path;
    const query = new URLSearchParams();
    for (const [p, input] of inputs) {
      if (!input.value) continue;
      if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(input.value));
      else if (p.in === "query") query.set(p.name, input.value);
    }
    if ([...query].length) url += "?" + query;
    const headers = {};
    if (keyInput.value) headers["x-api-key"] = keyInput.value;
    const csrf = document.cookie.match(/(?:^|; )cronicorn_csrf=([^;]*)/); // signed-in browsers
    if (csrf) headers["X-CSRF-Token"] = decodeURIComponent(csrf[1]);
    if (body) headers["content-type"] = "application/json";
    out.textContent = "…";
    try {
      const resp = await fetch(url, { method: method.toUpperCase(), headers, body: body ? body.value : undefined });
      const text = await resp.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
      out.textContent = `${resp.status} ${resp.statusText}\n\n${shown}`;
    } catch (err) {
      out.textContent = String(err);
    }
  });
  const paramList = inputs.length
    ? $("div", {}, $("h4", { text: "Parameters" }), ...inputs.map(([p, input]) =>
        $("div", {}, $("code", { text: `${p.name} (${p.in}) ` }), input)))
    : null;
  const ok = Object.entries(op.responses || {}).find(([code]) => code.startsWith("2"));
  const okSchema = ok?.[1]?.content?.["application/json"]?.schema;
  return $("details", { id: op.operationId },
    $("summary", {}, $("span", { class: `m ${method.toUpperCase()}`, text: method.toUpperCase() }),
      $("code", { text: server + path }), $("span", { text: "  " + (op.summary || "") })),
    $("div", { class: "body" },
      op.description ? $("p", { text: op.description }) : null,
      paramList,
      body ? $("h4", { text: "Body" }) : null, body,
      okSchema ? $("h4", { text: `Response ${ok[0]}` }) : null,
      okSchema ? $("pre", { text: JSON.stringify(resolve(doc, okSchema), null, 2) }) : null,
      send, out));
}

async function main() {
  const doc = await (await fetch("doc")).json();
  const server = (doc.servers && doc.servers[0].url) || "";
  const byTag = new Map();
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const tag = (op.tags || ["Other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([method, path, op]);
    }
  }
  const ops = document.getElementById("ops");
  const toc = document.getElementById("toc");
  ops.replaceChildren($("p", { text: doc.info.description || "" }));
  for (const [tag, list] of byTag) {
    toc.append($("h3", { text: tag }));
    ops.append($("h2", { text: tag }));
    for (const [method, path, op] of list) {
      toc.append($("a", { href: `#${op.operationId}`, text: `${method.toUpperCase()} ${path}` }));
      ops.append(operation(doc, server, method, path, op));
    }
  }
}
main().catch((err) => { document.getElementById("ops").textContent = "Could not load the API document: " + err; });
