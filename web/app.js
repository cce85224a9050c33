// The page's entry: who is looking (what they may do), then the view the address names:
// `#/` the executions, `#/executions/ID` one execution, `#/submit` the form to run one.

import { whoami, logout } from "./api.js";
import { showList } from "./list.js";
import { showExecution } from "./execution.js";
import { showSubmit } from "./submit.js";

const main = document.getElementById("main");
let leave = () => {};
let who = { role: null, auth: false };

/** What a role may do; without logins, everything. */
export function may(action) {
  if (!who.auth) return true;
  const rank = { viewer: 0, operator: 1, admin: 2 }[who.role] ?? -1;
  return rank >= { read: 0, operate: 1, delete: 2 }[action];
}

async function route() {
  leave();
  leave = () => {};
  const hash = location.hash.replace(/^#/, "") || "/";
  const execution = hash.match(/^\/executions\/([^/?]+)/);
  try {
    if (execution) leave = await showExecution(main, decodeURIComponent(execution[1]));
    else if (hash.startsWith("/submit")) leave = await showSubmit(main);
    else leave = await showList(main);
  } catch (error) {
    main.innerHTML = "";
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = error.message;
    main.append(p);
  }
}

async function start() {
  try {
    who = await whoami();
  } catch {
    who = { role: null, auth: false };
  }
  document.body.classList.toggle("no-operate", !may("operate"));
  document.body.classList.toggle("no-delete", !may("delete"));
  document.getElementById("who").textContent = who.auth && who.role ? `signed in: ${who.role}` : "";
  const out = document.getElementById("logout");
  out.hidden = !who.auth;
  out.onclick = logout;
  window.addEventListener("hashchange", route);
  await route();
}

start();
