// What every dashboard page's script uses (the run pages' dashboard.js and the study pages'
// study.js): DOM helpers, JSON fetches and Vega charts. A classic script, loaded first: its
// top-level names are visible to the page's script.
'use strict';
/* exported $, el, getJson, draw */

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
};

async function getJson(url) {
  const res = await fetch(url, { headers: { accept: 'application/json' } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.message || `${res.status} ${res.statusText}`);
  return body;
}

async function draw(target, spec) {
  await vegaEmbed(target, spec, { actions: false, renderer: 'svg' });
}
