// Operator login on the dashboard (server/operatorauth): shows who is logged in with a
// log in / log out link, and sends the browser to the login form when an action (or, with
// closed views, a view) is answered 401. Loaded before app.js; it only wraps fetch.
"use strict";
(() => {
  const realFetch = window.fetch.bind(window);
  window.fetch = async (...args) => {
    const res = await realFetch(...args);
    if (res.status === 401) {
      location.href = "/dashboard/login?next=" + encodeURIComponent(location.pathname + location.search + location.hash);
    } else if (res.status === 403 || res.status === 429) {
      // Refused for a reason a login does not cure (no operators configured, another site,
      // a host name not allowed, too many failures): say why.
      res.clone().json().then((b) => { if (b && b.error) alert(b.error); }).catch(() => {});
    }
    return res;
  };

  async function who() {
    const res = await realFetch("/dashboard/api/whoami");
    if (!res.ok) return;
    const w = await res.json();
    const box = document.createElement("span");
    box.id = "operator";
    box.className = "operator";
    box.style.marginLeft = "auto";
    box.style.color = "#fff";
    if (w.actor) {
      const f = document.createElement("form");
      f.method = "post";
      f.action = "/dashboard/logout";
      f.style.display = "inline";
      const b = document.createElement("button");
      b.type = "submit";
      b.textContent = "log out";
      f.append(w.actor + " ", b);
      box.append(f);
    } else if (w.operators) {
      const a = document.createElement("a");
      a.href = "/dashboard/login?next=" + encodeURIComponent(location.pathname + location.hash);
      a.textContent = "operator log in";
      a.style.color = "inherit";
      box.append(a);
    }
    (document.querySelector("header") || document.body).append(box);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", who);
  else who();
})();
