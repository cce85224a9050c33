// A task's detail beside the graph: its state and attempts, its error or result (and the
// `value` of a result that styles its node), and what it printed (its logs).

import { api, json, esc, shown } from "./api.js";
import { styleOf, named } from "./drawing.js";

export async function showTask(panel, base, node) {
  if (!node) return;
  panel.hidden = false;
  panel.innerHTML = `<button class="close" title="close" aria-label="close">×</button>
    <h2>${esc(named(node))}</h2><p class="muted">loading…</p>`;
  panel.querySelector(".close").onclick = () => (panel.hidden = true);
  const execution = await json(base);
  const task =
    execution.tasks.find((t) => t.name === node.task && (t.node_instance ?? null) === (node.node_instance ?? null)) ??
    node;
  const logs = await api(`${base}/logs?task=${encodeURIComponent(node.task)}`);
  const output = logs.ok ? await logs.text() : "";
  const value = styleOf(task.result).value;
  panel.innerHTML = `<button class="close" title="close" aria-label="close">×</button>
    <h2>${esc(named(node))}</h2>
    <dl>
      <dt>state</dt><dd><span class="node-state s-${esc(task.state)}"><span class="st"></span></span></dd>
      <dt>kind</dt><dd>${esc(task.kind)}</dd>
      ${node.node_instance ? `<dt>instance</dt><dd>${esc(node.node_instance)}</dd>` : ""}
      <dt>attempts</dt><dd class="attempts">${task.attempts}</dd>
    </dl>
    ${task.error ? `<h3>Error</h3><pre class="error">${esc(task.error)}</pre>` : ""}
    ${value !== undefined ? `<h3>Value</h3><pre class="value">${esc(shown(value))}</pre>` : ""}
    ${task.result !== undefined && task.result !== null ? `<h3>Result</h3><pre>${esc(shown(task.result))}</pre>` : ""}
    <h3>Output</h3><pre class="output">${output ? esc(output) : '<span class="muted">(nothing printed)</span>'}</pre>`;
  panel.querySelector(".close").onclick = () => (panel.hidden = true);
}
