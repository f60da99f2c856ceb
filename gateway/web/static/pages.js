// The pages' only script (no inline script anywhere: the Content-Security-Policy forbids it).
// Live progress (server-sent events), local times, the red dot, the pop-up, mark read.
(function () {
  "use strict";
  var locale = document.body.getAttribute("data-locale") || "en-US";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  // the widget on another site: its session is not a cookie but this page's (widget tokens,
  // gateway/sessions.py); its requests send it in a header, its event stream in the query
  var frameSession = (document.querySelector('meta[name="sentinel-session"]') || {}).content || "";
  var wtForm = document.getElementById("wt-form");
  if (wtForm && location.hash.indexOf("#wt=") === 0) {
    wtForm.elements.wt.value = decodeURIComponent(location.hash.slice(4));
    history.replaceState(null, "", location.pathname);
    wtForm.submit();
    return;
  }
  var fmt = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });

  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = fmt.format(d); }
    });
  }
  localTimes();

  // --- progress page: the server sends the new content when the status changes
  var progress = document.getElementById("progress");
  if (progress && progress.getAttribute("data-stream") && window.EventSource) {
    var es = new EventSource(progress.getAttribute("data-stream"));
    es.addEventListener("update", function (ev) {
      var data = JSON.parse(ev.data);
      progress.innerHTML = data.html;  // rendered and escaped by the server's templates
      progress.setAttribute("data-status", data.status);
      localTimes(progress);
    });
  }

  // --- inbox: red dot, list, pop-up for a new unread HIGH or CRITICAL message
  var stream = document.body.getAttribute("data-inbox-stream");
  var prefix = document.body.getAttribute("data-prefix") || "/pages";
  var dot = document.getElementById("dot");
  var popup = document.getElementById("popup");
  var shownKey = "sentinel.popped";

  function popped() {
    try { return JSON.parse(sessionStorage.getItem(shownKey) || "[]"); } catch (e) { return []; }
  }
  function remember(id) {
    var ids = popped(); ids.push(id);
    try { sessionStorage.setItem(shownKey, JSON.stringify(ids.slice(-200))); } catch (e) { /* private mode */ }
  }
  function setUnread(n) {
    if (dot) { dot.textContent = n > 99 ? "99+" : String(n); dot.hidden = n === 0; }
    var count = document.getElementById("unread-count");
    var list = document.getElementById("inbox-list");
    if (count && list) { count.textContent = list.getAttribute("data-unread-template").replace("{n}", n); count.setAttribute("data-n", n); }
  }
  function markRead(id) {
    return fetch(prefix + "/inbox/" + id + "/read", {
      method: "POST", credentials: "same-origin",
      headers: frameSession
        ? { "X-CSRF-Token": csrf, "Accept": "application/json", "X-Sentinel-Session": frameSession }
        : { "X-CSRF-Token": csrf, "Accept": "application/json" }
    }).then(function (r) { if (!r.ok) { throw new Error("mark read: " + r.status); } return r.json(); })
      .then(function (data) { setUnread(data.unread); showRead(id); return data; });
  }
  function showRead(id) {
    var li = document.querySelector('#inbox-list li[data-id="' + id + '"]');
    if (!li) { return; }
    li.classList.remove("unread");
    var form = li.querySelector("form.read-form");
    if (form) {
      var span = document.createElement("span");
      span.className = "is-read";
      span.textContent = document.getElementById("inbox-list").getAttribute("data-read-label");
      form.replaceWith(span);
    }
  }
  function renderList(messages) {
    var list = document.getElementById("inbox-list");
    if (!list) { return; }
    var known = {};
    list.querySelectorAll("li[data-id]").forEach(function (li) { known[li.getAttribute("data-id")] = li; });
    messages.slice().reverse().forEach(function (m) {
      if (known[m.id]) { if (m.read) { showRead(m.id); } return; }
      var li = document.createElement("li");
      li.className = "msg sev-" + m.severity + (m.read ? "" : " unread");
      li.setAttribute("data-id", m.id);
      var h = document.createElement("h2"); h.className = "msg-title"; h.textContent = m.title;
      var p = document.createElement("p"); p.className = "msg-body"; p.textContent = m.body;
      var actions = document.createElement("div"); actions.className = "msg-actions";
      var t = document.createElement("time"); t.setAttribute("datetime", m.created_at); actions.appendChild(t);
      if (m.url) { var a = document.createElement("a"); a.href = m.url; a.textContent = list.getAttribute("data-open-label"); actions.appendChild(a); }
      if (!m.read) {
        var b = document.createElement("button"); b.className = "btn small"; b.textContent = list.getAttribute("data-mark-label");
        b.addEventListener("click", function () { markRead(m.id); });
        var f = document.createElement("span"); f.className = "read-form"; f.appendChild(b); actions.appendChild(f);
      }
      li.appendChild(h); li.appendChild(p); li.appendChild(actions);
      list.insertBefore(li, list.firstChild);
      localTimes(li);
    });
    var empty = document.getElementById("inbox-empty");
    if (empty && messages.length) { empty.hidden = true; }
  }
  function showPopup(m) {
    if (!popup || !popup.hidden) { return; }
    remember(m.id);
    document.getElementById("popup-title").textContent = m.title;
    document.getElementById("popup-body").textContent = m.body;
    var open = document.getElementById("popup-open");
    if (m.url) { open.href = m.url; open.hidden = false; } else { open.hidden = true; }
    popup.setAttribute("data-id", m.id);
    popup.hidden = false;
  }
  if (popup) {
    document.getElementById("popup-close").addEventListener("click", function () { popup.hidden = true; });
    document.getElementById("popup-read").addEventListener("click", function () {
      markRead(popup.getAttribute("data-id")).then(function () { popup.hidden = true; });
    });
  }
  document.querySelectorAll("form.read-form").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      markRead(form.closest("li").getAttribute("data-id"));
    });
  });
  // --- the embeddable widget (/pages/widget, in an iframe on the platform's site): the bell
  // opens the panel; widget.js on the host page sizes the frame to what this page asks for
  // (only sizes are sent: nothing of the inbox leaves this frame)
  if (document.body.hasAttribute("data-widget")) {
    var panel = document.getElementById("widget-panel");
    var bellButton = document.getElementById("bell");
    var askSize = function () {
      var open = !!panel && !panel.hidden;
      window.parent.postMessage({ sentinelWidget: { open: open, width: open ? 360 : 48, height: open ? 480 : 48 } }, "*");
    };
    if (panel) {
      bellButton.addEventListener("click", function () {
        panel.hidden = !panel.hidden;
        bellButton.setAttribute("aria-expanded", String(!panel.hidden));
        askSize();
      });
    }
    askSize();
  }
  if (stream && window.EventSource) {
    var inboxEvents = new EventSource(frameSession ? stream + "?session=" + encodeURIComponent(frameSession) : stream);
    inboxEvents.addEventListener("inbox", function (ev) {
      var data = JSON.parse(ev.data);
      setUnread(data.unread);
      renderList(data.messages);
      var seen = popped();
      var urgent = data.messages.filter(function (m) {
        return !m.read && (m.severity === "HIGH" || m.severity === "CRITICAL") && seen.indexOf(m.id) < 0;
      });
      if (urgent.length) { showPopup(urgent[0]); }
    });
  }
})();
