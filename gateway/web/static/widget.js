// The embeddable inbox widget (docs/pages.md). A platform's own site adds one tag:
//   <script src="https://<gateway>/pages/static/widget.js" data-sentinel="https://<gateway>" async></script>
// and this script puts an iframe of <gateway>/pages/widget where the tag is (or into the
// element that data-target="<CSS selector>" names): a bell with the red dot that opens a
// panel of the signed-in user's inbox. Everything else (the inbox, its live updates, mark
// read with the session's CSRF token) happens inside the frame, on the gateway's origin and
// its session cookie; this script only sizes the frame when the frame asks (open or closed).
// On another site (a third-party frame gets no SameSite=Lax cookie) add a short-lived widget
// token that the platform's server made for its signed-in user: data-token="wt1...." (it goes
// in the frame URL's fragment, which no server and no access log sees; docs/pages.md).
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me || !me.src) { return; }
  var gateway = (me.getAttribute("data-sentinel") || new URL(me.src).origin).replace(/\/+$/, "");
  var origin = new URL(gateway, document.baseURI).origin;

  var box = document.createElement("span");
  box.className = "sentinel-widget";
  box.style.position = "relative";
  box.style.display = "inline-block";
  box.style.width = "48px";
  box.style.height = "48px";
  box.style.verticalAlign = "middle";

  var frame = document.createElement("iframe");
  frame.className = "sentinel-widget-frame";
  var token = me.getAttribute("data-token");
  frame.src = gateway + "/pages/widget" + (token ? "#wt=" + encodeURIComponent(token) : "");
  frame.title = me.getAttribute("data-title") || "Messages";
  frame.setAttribute("scrolling", "no");
  frame.style.position = "absolute";
  frame.style.top = "0";
  frame.style.right = "0";
  frame.style.width = "48px";
  frame.style.height = "48px";
  frame.style.border = "0";
  frame.style.background = "transparent";
  frame.style.zIndex = "2147483000";
  box.appendChild(frame);

  window.addEventListener("message", function (ev) {
    if (ev.source !== frame.contentWindow || ev.origin !== origin) { return; }
    var ask = ev.data && ev.data.sentinelWidget;
    if (!ask) { return; }
    var width = Math.max(48, Math.min(Number(ask.width) || 48, 480));
    var height = Math.max(48, Math.min(Number(ask.height) || 48, 640));
    // open towards the side with room: leftwards from the bell, unless the page ends there
    var leftward = box.getBoundingClientRect().right - width >= 0;
    frame.style.right = leftward ? "0" : "auto";
    frame.style.left = leftward ? "auto" : "0";
    frame.style.width = width + "px";
    frame.style.height = height + "px";
  });

  var target = me.getAttribute("data-target") && document.querySelector(me.getAttribute("data-target"));
  if (target) {
    target.appendChild(box);
  } else if (me.parentNode && me.parentNode !== document.head && document.body && document.body.contains(me)) {
    me.parentNode.insertBefore(box, me);
  } else {
    var place = function () { document.body.appendChild(box); };
    if (document.body) { place(); } else { document.addEventListener("DOMContentLoaded", place); }
  }
})();
