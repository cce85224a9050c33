// The form that runs a workflow: one field per parameter, from the JSON Schema the server
// gives of the workflow's parameters (`/api/v1/workflows`); sent to `/api/v1/executions`,
// then the new execution is shown.

import { json, send, failure, esc, shown } from "./api.js";

export async function showSubmit(main) {
  const [{ workflows }, { deployments }] = await Promise.all([
    json("/api/v1/workflows"),
    json("/api/v1/deployments").catch(() => ({ deployments: [] })),
  ]);
  main.innerHTML = `
    <section class="submit">
      <h1>Run a workflow</h1>
      <form id="run">
        <label>Workflow <select name="workflow" required>${workflows
          .map((w, i) => `<option value="${i}">${esc(w.bundle)} · ${esc(w.name)}</option>`)
          .join("")}</select></label>
        <p class="muted" id="description"></p>
        <label>Deployment <select name="deployment"><option value="">none</option>${deployments
          .map((d) => `<option>${esc(d.name)}</option>`)
          .join("")}</select></label>
        <fieldset id="parameters"><legend>Parameters</legend></fieldset>
        <pre class="error" id="refused" role="alert" hidden></pre>
        <button type="submit">Run</button>
      </form>
    </section>`;
  const form = main.querySelector("#run");
  const chosen = () => workflows[form.elements.workflow.value];
  const build = () => {
    main.querySelector("#description").textContent = chosen()?.description ?? "";
    fields(main.querySelector("#parameters"), chosen()?.parameters_schema ?? {});
  };
  form.elements.workflow.onchange = build;
  build();
  // One key per form shown: a second click (or a retry after a lost answer) is the same run.
  const key = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`;
  form.onsubmit = async (event) => {
    event.preventDefault();
    const refused = main.querySelector("#refused");
    refused.hidden = true;
    const workflow = chosen();
    let parameters;
    try {
      parameters = valuesOf(form, workflow.parameters_schema ?? {});
    } catch (error) {
      refused.textContent = error.message;
      refused.hidden = false;
      return;
    }
    const request = { bundle: workflow.bundle, workflow: workflow.name, parameters };
    if (form.elements.deployment.value) request.deployment = form.elements.deployment.value;
    const response = await send("POST", "/api/v1/executions", request, { "Idempotency-Key": key });
    if (!response.ok) {
      refused.textContent = (await failure(response)).message;
      refused.hidden = false;
      return;
    }
    const { id } = await response.json();
    location.hash = `#/executions/${encodeURIComponent(id)}`;
  };
  return () => {};
}

/** The fields of an object schema's properties. */
function fields(into, schema) {
  const required = new Set(schema.required ?? []);
  const properties = Object.entries(schema.properties ?? {});
  into.hidden = properties.length === 0;
  into.innerHTML =
    "<legend>Parameters</legend>" +
    properties
      .map(([name, p]) => {
        const id = `p-${esc(name)}`;
        const mark = required.has(name) ? ' <abbr title="required">*</abbr>' : "";
        const help = p.description ? `<small>${esc(p.description)}</small>` : "";
        const label = `<label for="${id}">${esc(name)}${mark}</label>`;
        const need = required.has(name) ? " required" : "";
        const value = p.default === undefined ? "" : esc(shown(p.default));
        let input;
        if (p.type === "boolean") {
          input = `<input type="checkbox" id="${id}" name="${id}"${p.default ? " checked" : ""}>`;
        } else if (p.type === "integer" || p.type === "number") {
          const step = p.type === "integer" ? "1" : "any";
          input = `<input type="number" step="${step}" id="${id}" name="${id}" value="${value}"${need}>`;
        } else if (p.type === "string") {
          input = `<input id="${id}" name="${id}" value="${value}"${need}>`;
        } else {
          input = `<textarea id="${id}" name="${id}" rows="3" placeholder="JSON"${need}>${value}</textarea>`;
        }
        return `<div class="field">${label}${input}${help}</div>`;
      })
      .join("");
}

/** The parameters the form gives, typed as the schema says; empty optional fields left out. */
function valuesOf(form, schema) {
  const values = {};
  for (const [name, p] of Object.entries(schema.properties ?? {})) {
    const input = form.elements[`p-${name}`];
    if (!input) continue;
    if (p.type === "boolean") {
      values[name] = input.checked;
      continue;
    }
    const text = input.value.trim();
    if (text === "") continue;
    if (p.type === "integer" || p.type === "number") values[name] = Number(text);
    else if (p.type === "string") values[name] = input.value;
    else {
      try {
        values[name] = JSON.parse(text);
      } catch {
        if (p.type) throw new Error(`${name}: not JSON (${p.type} expected)`);
        values[name] = text;
      }
    }
  }
  return values;
}
