// queuert dashboard: refresh the live sections of the page in place.
// Every few seconds the current URL (filters and page included) is fetched again and each
// element marked data-live with an id is replaced by its new version. Scroll position, the
// filter form and open <details> are kept; nothing runs while the tab is hidden.
(function () {
  "use strict";
  var body = document.body;
  var interval = parseInt(body.getAttribute("data-refresh-ms") || "0", 10);
  if (!interval || !window.fetch || !window.DOMParser) {
    return;
  }
  var busy = false;

  function openDetails(section) {
    var open = [];
    section.querySelectorAll("details").forEach(function (d, i) {
      if (d.open) {
        open.push(i);
      }
    });
    return open;
  }

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(window.location.href, {
      credentials: "same-origin",
      headers: { "X-Queuert-Refresh": "1" },
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (section) {
          var next = fresh.getElementById(section.id);
          if (!next || next.innerHTML === section.innerHTML) {
            return;
          }
          var open = openDetails(section);
          section.innerHTML = next.innerHTML;
          var all = section.querySelectorAll("details");
          open.forEach(function (i) {
            if (all[i]) {
              all[i].open = true;
            }
          });
        });
        body.classList.remove("stale");
        body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {
        body.classList.add("stale");
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, interval);
  document.addEventListener("visibilitychange", refresh);
})();
