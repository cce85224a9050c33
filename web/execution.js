// One execution: its summary and buttons (cancel, resume, delete), its graphs drawn (or
// tabled when large), kept live from its event stream: a task's new state toggles the class
// of its element, nothing is drawn again. A click on a task shows its detail.

import { json, send, failure, follow, esc } from "./api.js";
import { drawGraph, tableOf, restyle, zoom, TABLE_LIMIT } from "./drawing.js";
import { showTask } from "./detail.js";
import { when } from "./list.js";

const ENDED = new Set(["succeeded", "failed", "cancelled"]);
// The error of a task a cancel stopped (the server's `events::CANCELLED`).
const CANCELLED = "the execution was cancelled";

export async function showExecution(main, id) {
  const following = { stop: () => {} };
  await show(main, id, following);
  return () => following.stop();
}

/** Shows the execution as it is now, and follows it; a graph that starts later (a new
 * `graph_planned`) shows it again, with that graph. */
async function show(main, id, following) {
  const base = `/api/v1/executions/${encodeURIComponent(id)}`;
  const execution = await json(base);
  const { graphs } = await json(`${base}/graph`);
  main.innerHTML = `
    <section class="execution">
      <h1><span class="badge" id="status"></span> ${esc(execution.workflow)} <span class="mono muted">${esc(execution.id)}</span></h1>
      <p class="muted" id="times"></p>
      <pre class="error" id="error" hidden></pre>
      <div class="actions">
        <button class="may-operate" id="cancel">Cancel</button>
        <button class="may-operate" id="force">Force cancel</button>
        <button class="may-operate" id="resume">Resume</button>
        <button class="may-delete danger" id="delete">Delete</button>
        <button id="view"></button>
        <span class="zoom"><button data-zoom="0.8" title="smaller">−</button><button data-zoom="fit">Fit</button><button data-zoom="1.25" title="larger">+</button></span>
        <span class="error" id="action-error" role="alert"></span>
      </div>
      <div class="split"><div id="graphs"></div><aside id="task" class="task-detail" hidden></aside></div>
    </section>`;
  const section = main.querySelector("section.execution");
  const summary = (e) => {
    if (!section.isConnected) return; // another view (or this one again) took the page
    const status = main.querySelector("#status");
    status.textContent = e.status;
    status.className = `badge st-${e.status}`;
    main.querySelector("#times").textContent =
      `started ${when(e.started_at)}` + (e.ended_at ? `, ended ${when(e.ended_at)}` : "");
    const error = main.querySelector("#error");
    error.hidden = !e.error;
    error.textContent = e.error ?? "";
    const ended = ENDED.has(e.status);
    main.querySelector("#cancel").hidden = !["running", "queued"].includes(e.status);
    main.querySelector("#force").hidden = !["running", "queued"].includes(e.status);
    main.querySelector("#resume").hidden = !["failed", "cancelled", "crashed"].includes(e.status);
    main.querySelector("#delete").hidden = !ended;
  };
  summary(execution);
  const live = liveGraphs(main.querySelector("#graphs"), graphs, main.querySelector("#view"));
  const panel = main.querySelector("#task");
  const graphsElement = main.querySelector("#graphs");
  graphsElement.addEventListener("click", (event) => {
    const element = event.target.closest(".node");
    if (!element) return;
    panel.dataset.key = element.dataset.key;
    showTask(panel, base, live.nodeOf(element));
  });
  graphsElement.addEventListener("keydown", (event) => {
    if ((event.key === "Enter" || event.key === " ") && event.target.closest(".node")) {
      event.preventDefault();
      event.target.closest(".node").click();
    }
  });
  // The task shown beside changed: its detail is read again.
  graphsElement.addEventListener("task-changed", (event) => {
    if (!panel.hidden && event.target.dataset.key === panel.dataset.key) {
      showTask(panel, base, live.nodeOf(event.target));
    }
  });
  actions(main, base, id, () => {
    following.stop();
    show(main, id, following);
  });
  main.querySelector(".zoom").onclick = (event) => {
    const by = event.target.dataset.zoom;
    main.querySelectorAll(".graph").forEach((into) => {
      const graph = graphs[into.dataset.g];
      zoom(into, graph, by === "fit" ? "fit" : Math.min(2, Math.max(0.1, (+into.dataset.zoom || 1) * by)));
    });
  };
  // Read again when the execution changed; gone (deleted) or unreachable, the view stays.
  const refresh = () => json(base).then(summary, () => {});
  following.stop = follow(`${base}/events`, execution.last_seq, (event) => {
    if (event.type === "graph_planned" && !graphs.some((g) => g.graph_id === event.graph_id)) {
      following.stop();
      show(main, id, following);
      return;
    }
    live.apply(event);
    if (event.type?.startsWith("workflow_")) refresh();
  }, refresh);
}

/** The buttons: each POSTs (or DELETEs); a resume shows the execution `again`. */
function actions(main, base, id, again) {
  const shownError = main.querySelector("#action-error");
  const act = async (method, path, body, then) => {
    shownError.textContent = "";
    const response = await send(method, path, body);
    if (!response.ok) shownError.textContent = (await failure(response)).message;
    else then();
  };
  main.querySelector("#cancel").onclick = () => act("POST", `${base}/cancel`, { force: false }, () => {});
  main.querySelector("#force").onclick = () => act("POST", `${base}/cancel`, { force: true }, () => {});
  main.querySelector("#resume").onclick = () => act("POST", `${base}/resume`, undefined, again);
  main.querySelector("#delete").onclick = () => {
    if (confirm(`Delete execution ${id} and its events?`)) act("DELETE", base, undefined, () => (location.hash = "#/"));
  };
}

/**
 * The graphs drawn (or tabled), with what keeps them live: `apply(event)` moves a task to
 * the state the event says. Events name a task by `task_id`; a retry's new id is learnt from
 * its task's name (and instance), as the server does.
 */
function liveGraphs(into, graphs, viewButton) {
  const total = graphs.reduce((sum, g) => sum + g.nodes.length, 0);
  let asTable = total > TABLE_LIMIT;
  const nodes = []; // [graph index, node index] → {node, element}
  const byId = new Map();
  const byName = new Map();
  graphs.forEach((g, gi) =>
    g.nodes.forEach((node, ni) => {
      const entry = { node, element: null, key: `${gi}:${ni}` };
      nodes.push(entry);
      byId.set(node.task_id, entry);
      byName.set(`${node.task}\u0000${node.node_instance ?? ""}`, entry);
    }),
  );
  const render = () => {
    const started = performance.now();
    into.innerHTML = graphs.length ? "" : `<p class="muted">No graph ran in this execution.</p>`;
    let at = 0;
    graphs.forEach((graph, gi) => {
      const section = document.createElement("div");
      section.className = "graph";
      section.dataset.g = gi;
      into.append(section);
      const elements = asTable ? tableOf(section, graph) : drawGraph(section, graph);
      elements.forEach((element, ni) => {
        nodes[at + ni].element = element;
        element.dataset.key = `${gi}:${ni}`;
        if (!asTable) restyle(element, graph.nodes[ni]);
      });
      at += graph.nodes.length;
    });
    into.getBoundingClientRect(); // the layout, inside the time measured
    window.rhaiflowRender = { tasks: total, ms: performance.now() - started, table: asTable };
    viewButton.textContent = asTable ? "Show the drawing" : "Show as a table";
    viewButton.title = total > TABLE_LIMIT ? `${total} tasks: more than a drawing can show well` : "";
  };
  viewButton.onclick = () => {
    asTable = !asTable;
    render();
  };
  render();
  const keyed = new Map(nodes.map((entry) => [entry.key, entry]));
  return {
    nodeOf: (element) => keyed.get(element.dataset.key)?.node,
    apply(event) {
      if (event.task_id === undefined || !event.type?.startsWith("task_")) return;
      const entry = byId.get(event.task_id) ?? byName.get(`${event.task}\u0000${event.node_instance ?? ""}`);
      if (!entry) return;
      byId.set(event.task_id, entry);
      change(entry, event, asTable);
    },
  };
}

const STATE_OF = {
  task_started: "running",
  task_succeeded: "succeeded",
  task_rescheduled: "rescheduled",
  task_reverted: "reverted",
  task_revert_failed: "revert_failed",
};

/** A task's new state: its class toggled; its attempts, result or error noted. */
function change({ node, element }, event, asTable) {
  let state = STATE_OF[event.type];
  if (event.type === "task_failed") state = event.error === CANCELLED ? "cancelled" : "failed";
  if (!state) return;
  if (event.type === "task_started") node.attempts += 1;
  if (event.type === "task_succeeded") node.result = event.result ?? null;
  if (event.error !== undefined) node.error = event.error;
  if (!element) return;
  element.classList.replace(`s-${node.state}`, `s-${state}`) || element.classList.add(`s-${state}`);
  node.state = state;
  if (asTable) {
    element.querySelector(".attempts").textContent = node.attempts;
    if (event.error !== undefined || event.result !== undefined) {
      element.querySelector(".out").textContent = event.error ?? JSON.stringify(event.result);
    }
  } else if (event.type === "task_succeeded") {
    restyle(element, node);
  }
  element.dispatchEvent(new CustomEvent("task-changed", { bubbles: true }));
}
