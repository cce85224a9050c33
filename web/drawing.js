// A graph drawn from the places the server computed (left to right): each task a box whose
// class says its state (colour, and a word and a sign from the stylesheet, so colour is not
// the only signal), edges as curves, subgraphs as boxes around their members that fold.
// Past `TABLE_LIMIT` tasks a drawing helps no one: the tasks are listed in a table instead.
// Either way a task's element is found by its index, so a change of state toggles a class.

import { esc, shown } from "./api.js";

export const TABLE_LIMIT = 5000;
const SHAPES = new Set(["box", "round", "circle", "ellipse", "diamond"]);
// Colours as CSS reads them, nothing else (they go into a style attribute).
const COLOUR = /^(#[0-9a-f]{3,8}|[a-z]{3,20}|(rgb|hsl)a?\([0-9.,%\s]+\))$/i;

/** Draws `graph` into `into`; returns the task elements by node index. */
export function drawGraph(into, graph) {
  const { node_width: w, node_height: h } = graph;
  const at = graph.nodes.map((n) => [n.x - w / 2, n.y - h / 2]);
  const index = new Map(graph.nodes.map((n, i) => [n.task_id, i]));
  const edges = graph.edges
    .map(([a, b]) => [index.get(a), index.get(b)])
    .filter(([a, b]) => a !== undefined && b !== undefined);
  const paths = edges.map(([a, b]) => {
    const [x1, y1] = [at[a][0] + w, at[a][1] + h / 2];
    const [x2, y2] = [at[b][0], at[b][1] + h / 2];
    const d = Math.max(20, (x2 - x1) / 2);
    return `<path data-a="${a}" data-b="${b}" d="M${x1} ${y1}C${x1 + d} ${y1} ${x2 - d} ${y2} ${x2} ${y2}"/>`;
  });
  const boxes = subgraphBoxes(graph, at, w, h);
  into.innerHTML = `<div class="sizer"><div class="canvas" style="width:${graph.width}px;height:${graph.height}px;--w:${w}px;--h:${h}px">
    <svg class="edges" width="${graph.width}" height="${graph.height}" aria-hidden="true">
      <defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto">
      <path d="M0 0L8 4L0 8z"/></marker></defs>${paths.join("")}</svg>
    ${boxes.join("")}${graph.nodes.map((n, i) => nodeHtml(n, i, at[i])).join("")}</div></div>`;
  zoom(into, graph, Math.min(1, into.clientWidth / graph.width) >= 0.6 ? Math.min(1, into.clientWidth / graph.width) : 1);
  const elements = [...into.querySelectorAll(".node")];
  into.querySelector(".canvas").addEventListener("click", (event) => {
    const fold = event.target.closest(".fold");
    if (!fold) return;
    fold.parentElement.classList.toggle("folded");
    refold(into, graph);
  });
  return elements;
}

/** Scales a drawing (1: as laid out); `fit` scales it to its frame's width. */
export function zoom(into, graph, scale) {
  if (scale === "fit") scale = Math.min(1, into.clientWidth / graph.width);
  const sizer = into.querySelector(".sizer");
  if (!sizer) return;
  into.dataset.zoom = scale;
  sizer.style.width = `${graph.width * scale}px`;
  sizer.style.height = `${graph.height * scale}px`;
  sizer.firstElementChild.style.transform = scale === 1 ? "" : `scale(${scale})`;
}

function nodeHtml(node, i, [left, top]) {
  return `<div class="node s-${esc(node.state)} k-${esc(node.kind)}" data-i="${i}" role="button" tabindex="0"
    style="left:${left}px;top:${top}px" title="${esc(named(node))}">${inner(node)}</div>`;
}

/** A task as the logs name it: `web_1 configure` for an instance's operation. */
export function named(node) {
  return node.node_instance ? `${node.node_instance} ${node.task}` : node.task;
}

/** A node's text, and its style when its result asks for one (Cloudmesh's results). */
function inner(node) {
  const style = styleOf(node.result);
  const name = style.label ?? named(node);
  const value = style.value === undefined ? "" : `<span class="val">${esc(shown(style.value))}</span>`;
  const fill = style.color ? `<span class="fill" style="background:${style.color}"></span>` : "";
  return `${fill}<span class="name">${esc(name)}</span><span class="st"></span>${value}`;
}

/** What a task's result says of its drawing: `{color, shape, label, value}`, each checked. */
export function styleOf(result) {
  if (!result || typeof result !== "object" || Array.isArray(result)) return {};
  const style = {};
  if (typeof result.color === "string" && COLOUR.test(result.color.trim())) style.color = result.color.trim();
  if (typeof result.shape === "string" && SHAPES.has(result.shape)) style.shape = result.shape;
  if (result.label !== undefined && result.label !== null) style.label = shown(result.label);
  if ("value" in result) style.value = result.value;
  return style;
}

/** Sets a node's look from its result (once it succeeded). */
export function restyle(element, node) {
  const shape = styleOf(node.result).shape;
  element.classList.forEach((c) => c.startsWith("shape-") && element.classList.remove(c));
  if (shape) element.classList.add(`shape-${shape}`);
  if (styleOf(node.result).color || shape || node.result?.label !== undefined || "value" in Object(node.result)) {
    element.innerHTML = inner(node);
  }
}

/** A box around each subgraph's members (nested ones inside), its header a fold button. */
function subgraphBoxes(graph, at, w, h) {
  const index = new Map(graph.nodes.map((n, i) => [n.task_id, i]));
  const members = new Map();
  graph.nodes.forEach((n, i) => {
    if (n.subgraph === null || n.subgraph === undefined || !index.has(n.subgraph)) return;
    const s = index.get(n.subgraph);
    if (!members.has(s)) members.set(s, []);
    members.get(s).push(i);
  });
  const depth = (s) => Math.max(0, ...(members.get(s) || []).filter((m) => members.has(m)).map((m) => depth(m) + 1));
  const within = (s) => (members.get(s) || []).flatMap((m) => [m, ...within(m)]);
  graph.boxes = [];
  return [...members.keys()].map((s) => {
    const all = [s, ...within(s)];
    const pad = 6 + 8 * depth(s);
    const left = Math.min(...all.map((i) => at[i][0])) - pad;
    const top = Math.min(...all.map((i) => at[i][1])) - pad - 14;
    const right = Math.max(...all.map((i) => at[i][0] + w)) + pad;
    const bottom = Math.max(...all.map((i) => at[i][1] + h)) + pad;
    graph.boxes.push({ s, hidden: within(s), folded: [left, top, at[s][0] + w + pad - left, at[s][1] + h + pad - top] });
    return `<div class="box" data-s="${s}" style="left:${left}px;top:${top}px;width:${right - left}px;height:${bottom - top}px">
      <button class="fold" aria-expanded="true" title="fold or unfold">${esc(graph.nodes[s].task)}</button></div>`;
  });
}

/** Hides the members of folded subgraphs, and the edges that touch them. */
function refold(into, graph) {
  const hidden = new Set();
  for (const box of graph.boxes) {
    const element = into.querySelector(`.box[data-s="${box.s}"]`);
    const folded = element.classList.contains("folded");
    element.querySelector(".fold").setAttribute("aria-expanded", String(!folded));
    if (folded) {
      box.hidden.forEach((i) => hidden.add(i));
      element.dataset.size ??= `${element.style.width};${element.style.height}`;
      element.style.width = `${box.folded[2]}px`;
      element.style.height = `${box.folded[3]}px`;
    } else if (element.dataset.size) {
      [element.style.width, element.style.height] = element.dataset.size.split(";");
      delete element.dataset.size;
    }
  }
  into.querySelectorAll(".node").forEach((n) => n.classList.toggle("hidden", hidden.has(+n.dataset.i)));
  into.querySelectorAll(".box").forEach((b) => b.classList.toggle("hidden", hidden.has(+b.dataset.s)));
  into.querySelectorAll(".edges path[data-a]").forEach((p) => {
    p.classList.toggle("hidden", hidden.has(+p.dataset.a) || hidden.has(+p.dataset.b));
  });
}

/** The tasks as a table (for graphs too large to draw); rows by node index. */
export function tableOf(into, graph) {
  const rows = graph.nodes.map(
    (n, i) => `<tr class="node s-${esc(n.state)}" data-i="${i}" tabindex="0"><td>${esc(n.task)}</td>
      <td>${esc(n.node_instance)}</td><td>${esc(n.kind)}</td><td><span class="st"></span></td>
      <td class="attempts">${n.attempts}</td><td class="out">${esc(n.error ?? shown(n.result))}</td></tr>`,
  );
  into.innerHTML = `<table class="tasks"><thead><tr><th>task</th><th>instance</th><th>kind</th><th>state</th>
    <th>attempts</th><th>result or error</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
  return [...into.querySelectorAll("tr.node")];
}
