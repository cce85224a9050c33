// The executions, newest first, filtered by status and workflow; live: each change the
// server streams (`/api/v1/events`) updates its row or adds one, without a reload.

import { json, follow, esc } from "./api.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "crashed"];
const filters = { status: "", workflow: "" };

export async function showList(main) {
  main.innerHTML = `
    <section class="list">
      <h1>Executions</h1>
      <form class="filters" id="filters">
        <label>Status <select name="status"><option value="">any</option>
          ${STATUSES.map((s) => `<option>${s}</option>`).join("")}</select></label>
        <label>Workflow <input name="workflow" placeholder="any" list="workflow-names"></label>
        <datalist id="workflow-names"></datalist>
        <a class="button may-submit" href="#/submit">Run a workflow</a>
      </form>
      <table class="executions"><thead><tr><th>status</th><th>workflow</th><th>id</th>
        <th>tasks</th><th>started</th><th>ended</th><th>error</th></tr></thead><tbody></tbody></table>
      <p class="muted" id="empty" hidden>No executions.</p>
      <button id="more" hidden>More</button>
    </section>`;
  const form = main.querySelector("#filters");
  const body = main.querySelector("tbody");
  const more = main.querySelector("#more");
  form.elements.status.value = filters.status;
  form.elements.workflow.value = filters.workflow;
  const rows = new Map();
  let cursor = null;

  const load = async (reset) => {
    if (reset) {
      body.innerHTML = "";
      rows.clear();
      cursor = null;
    }
    const query = new URLSearchParams({ limit: "50" });
    if (filters.status) query.set("status", filters.status);
    if (filters.workflow) query.set("workflow", filters.workflow);
    if (cursor) query.set("cursor", cursor);
    const page = await json(`/api/v1/executions?${query}`);
    for (const execution of page.executions) place(execution, false);
    cursor = page.next_cursor ?? null;
    more.hidden = !cursor;
    main.querySelector("#empty").hidden = rows.size > 0;
  };
  const place = (execution, live) => {
    let row = rows.get(execution.id);
    if (!row) {
      if (live && !matches(execution)) return;
      row = document.createElement("tr");
      rows.set(execution.id, row);
      if (live) body.prepend(row);
      else body.append(row);
      main.querySelector("#empty").hidden = true;
    }
    fill(row, execution);
  };
  form.onchange = () => {
    filters.status = form.elements.status.value;
    filters.workflow = form.elements.workflow.value.trim();
    load(true);
  };
  form.onsubmit = (event) => event.preventDefault();
  more.onclick = () => load(false);
  await load(true);
  names(main.querySelector("#workflow-names"));
  return follow("/api/v1/events", null, (execution) => place(execution, true));
}

function matches(execution) {
  return (
    (!filters.status || filters.status === execution.status) &&
    (!filters.workflow || filters.workflow === execution.workflow)
  );
}

function fill(row, e) {
  const link = `#/executions/${encodeURIComponent(e.id)}`;
  row.className = `st-${e.status}`;
  row.dataset.id = e.id;
  const progress = e.tasks_total ? `${e.tasks_done}/${e.tasks_total}` : "";
  const share = e.tasks_total ? Math.round((100 * e.tasks_done) / e.tasks_total) : 0;
  row.innerHTML = `<td><span class="badge">${esc(e.status)}</span></td>
    <td><a href="${link}">${esc(e.workflow)}</a></td>
    <td><a href="${link}" class="mono">${esc(e.id.slice(0, 8))}</a></td>
    <td><progress max="100" value="${share}"></progress> ${progress}</td>
    <td>${esc(when(e.started_at))}</td><td>${esc(when(e.ended_at))}</td>
    <td class="error-cell" title="${esc(e.error)}">${esc(e.error)}</td>`;
}

export function when(timestamp) {
  if (!timestamp) return "";
  const date = new Date(timestamp);
  return isNaN(date) ? timestamp : date.toLocaleString();
}

async function names(list) {
  try {
    const { workflows } = await json("/api/v1/workflows");
    const unique = [...new Set(workflows.map((w) => w.name))];
    list.innerHTML = unique.map((n) => `<option value="${esc(n)}">`).join("");
  } catch {
    // Only suggestions: the filter works without them.
  }
}
