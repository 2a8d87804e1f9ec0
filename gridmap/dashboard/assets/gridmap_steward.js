// The steward in the field (issue 18): the outbox of visits saved without a connection, the phone's position
// (with consent), the day's list kept in the browser, road-name labels of the offline map.
//
// Outbox: a press of 保存探访记录 puts the form (the save callback's states) into localStorage under its
// idempotency key; the server's answer to that save takes it off (gmSteward.ack). Whatever stays is sent to
// POST /gm-steward/visit when the connection is back (the "online" event, and every few seconds); the server
// stores each key once, so a visit whose answer was lost and is sent again is not stored twice.
(function () {
    "use strict";
    var QUEUE = "gm-visit-queue";
    var DAY = "gm-day-list";
    var WAIT_MS = 6000;  // the page's own save gets this long to answer before the outbox sends it
    var sending = false;

    function load() {
        try { return JSON.parse(window.localStorage.getItem(QUEUE) || "[]"); } catch (e) { return []; }
    }
    function store(q) {
        try { window.localStorage.setItem(QUEUE, JSON.stringify(q)); } catch (e) { /* full or private mode */ }
        show();
    }
    function csrf() {
        var m = document.cookie.match(/(?:^|;\s*)_csrf_token=([^;]+)/);
        return m ? decodeURIComponent(m[1]) : "";
    }
    function el(id) { return document.getElementById(id); }
    function note(text, kind) {
        var box = el("stw-outbox");
        if (!box) { return; }
        var t = el("stw-outbox-text");
        if (t) { t.textContent = text; }
        box.className = "gm-outbox " + (kind || "info");
        box.style.display = text ? "block" : "none";
    }

    function show(extra, kind) {
        var q = load();
        var list = el("stw-outbox-list");
        if (list) {
            list.innerHTML = "";
            q.forEach(function (it) {
                var li = document.createElement("li");
                li.textContent = "老人 " + (it.elder || "?") + " · " + (it.day || "") + " · 暂存于 " +
                    new Date(it.at).toLocaleTimeString("zh-CN", {hour: "2-digit", minute: "2-digit"}) +
                    (it.error ? " · 上次发送：" + it.error : "");
                list.appendChild(li);
            });
        }
        var head = q.length ? ("待发送 " + q.length + " 条探访记录" +
            (navigator.onLine ? "（正在发送…）" : "（网络未连接，联网后自动发送）")) : "";
        var text = [extra, head].filter(Boolean).join("；");
        note(text, kind || (q.length ? "warn" : "ok"));
        var box = el("stw-outbox");
        if (box) { box.setAttribute("data-pending", String(q.length)); }
    }

    // who is signed in (the steward view's data-user): a visit waits for the user who saved it, never sent
    // under another user's session on a shared phone
    function me() {
        var v = el("steward-view");
        return v ? (v.getAttribute("data-user") || "") : "";
    }

    function enqueue(n, args, idx) {
        if (!n) { return null; }
        var key = args[idx.key];
        if (!key) { return null; }
        var q = load().filter(function (it) { return it.key !== key; });  // the latest form of a submission
        q.push({key: key, args: args, elder: args[idx.elder], day: String(args[idx.day] || "").slice(0, 10),
                at: Date.now(), user: me()});
        store(q);
        if (!navigator.onLine) {
            show("网络未连接：探访记录已暂存在本机", "warn");
        }
        return q.length;
    }

    function ack(key) {
        var q = load();
        var rest = q.filter(function (it) { return it.key !== key; });
        if (rest.length !== q.length) { store(rest); }
    }

    function flush(force) {
        if (sending || !navigator.onLine) { return; }
        var q = load();
        var now = Date.now();
        var who = me();
        var due = q.filter(function (it) {
            return (force || now - it.at >= WAIT_MS) && (!it.user || it.user === who);
        });
        if (!due.length) { return; }
        sending = true;
        var it = due[0];
        fetch("/gm-steward/visit", {
            method: "POST", credentials: "same-origin",
            headers: {"Content-Type": "application/json", "X-CSRFToken": csrf()},
            body: JSON.stringify({args: it.args})
        }).then(function (r) {
            return r.json().catch(function () { return {status: "err", message: "HTTP " + r.status}; })
                .then(function (b) { return {http: r.status, body: b}; });
        }).then(function (res) {
            sending = false;
            if (res.http === 200 || res.http === 422 || res.http === 400) {
                ack(it.key);  // stored (once), or refused with a reason the steward must see
                var ok = res.http === 200;
                show((ok ? "已发送：" : "未能保存：") + (res.body.message || ""), ok ? "ok" : "err");
                if (ok && res.body.version !== undefined && window.dash_clientside && window.dash_clientside.set_props) {
                    window.dash_clientside.set_props("data-version", {data: res.body.version});
                }
                setTimeout(function () { flush(true); }, 200);
            } else {  // signed out (401), server or database down: kept, tried again later
                var q2 = load();
                q2.forEach(function (x) { if (x.key === it.key) { x.error = "HTTP " + res.http; } });
                store(q2);
            }
        }).catch(function () {  // no connection after all: kept
            sending = false;
            show();
        });
    }

    function toForm() {
        var f = el("stw-form");
        if (f) { setTimeout(function () { f.scrollIntoView({behavior: "smooth", block: "start"}); }, 50); }
    }

    // the phone's position, asked for only while the consent box is ticked
    function locate() {
        var box = document.querySelector("#stw-consent input[type=checkbox]");
        if (!box || !box.checked || !navigator.geolocation) { return; }
        navigator.geolocation.getCurrentPosition(function (p) {
            if (window.dash_clientside && window.dash_clientside.set_props) {
                window.dash_clientside.set_props("stw-pos", {data: {lon: p.coords.longitude, lat: p.coords.latitude,
                    accuracy: p.coords.accuracy, at: p.timestamp}});
            }
        }, function () { /* refused or unavailable: saved without it */ },
        {enableHighAccuracy: true, timeout: 10000, maximumAge: 30000});
    }

    // the day's list without a connection: the copy kept by the last visit of the page (stw-day-cache), shown
    // beside the live list while that has not come (the server cannot be reached), hidden once it has
    function offlineDay() {
        var box = el("stw-offline-day");
        var route = el("stw-route");
        if (!box || !route) { return; }
        if (route.textContent.trim()) { box.style.display = "none"; return; }
        var d = null;
        try { d = JSON.parse(window.localStorage.getItem("stw-day-cache") || "null"); } catch (e) { d = null; }
        if (!d || !d.stops) { return; }
        var esc = function (t) { return String(t).replace(/[&<>"]/g, function (c) {
            return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); };
        var h = "<div class='gm-msg warn'>无法连接服务器：显示本机保存的当日清单（" + esc(d.day) + "）</div><ol>";
        d.stops.forEach(function (s) {
            h += "<li><b>" + esc(s.label) + "</b> " + esc(s.address) + " · " + esc(s.time) + " · " + esc(s.check) +
                 "</li>";
        });
        h += "</ol><ul>";
        d.contacts.forEach(function (c) {
            h += "<li>" + esc(c.kind) + "：" + esc(c.label) + " " + esc(c.phone) + " · 问：" + esc(c.asks) + "</li>";
        });
        box.innerHTML = h + "</ul>";
        box.style.display = "block";
    }

    if ("serviceWorker" in navigator && window.isSecureContext) {
        navigator.serviceWorker.register("/assets/gm-sw.js", {scope: "/"}).catch(function () { /* not allowed */ });
        document.addEventListener("click", function (e) {  // signed out: the kept page goes too
            if (e.target && e.target.closest && e.target.closest("#logout-button") && navigator.serviceWorker.controller) {
                navigator.serviceWorker.controller.postMessage("forget");
            }
        }, true);
    }

    document.addEventListener("change", function (e) {
        if (e.target && e.target.closest && e.target.closest("#stw-consent")) { locate(); }
    }, true);
    document.addEventListener("pointerdown", function (e) {
        if (e.target && e.target.closest && e.target.closest("#stw-save")) { locate(); }
    }, true);
    window.addEventListener("online", function () { show(); flush(true); });
    window.addEventListener("offline", function () { show(); });
    window.setInterval(function () { flush(false); }, 3000);
    window.setTimeout(function () { show(); }, 1500);
    window.setTimeout(function () { offlineDay(); window.setInterval(offlineDay, 2000); }, 5000);

    window.gmSteward = {enqueue: enqueue, ack: ack, flush: flush, toForm: toForm, queue: load, show: show,
                        DAY: DAY};
    window.gridmap = Object.assign({}, window.gridmap, {
        // a road's name along it (offline map): properties {name, angle}. A permanent tooltip on an invisible
        // point (not a marker: the map's markers are the day's stops)
        roadLabel: function (feature, latlng) {
            var p = feature.properties || {};
            var name = String(p.name).replace(/[<>&"]/g, "");
            return L.circleMarker(latlng, {radius: 0, opacity: 0, fillOpacity: 0, interactive: false})
                .bindTooltip('<span style="transform:rotate(' + (Number(p.angle) || 0) + 'deg)">' + name + "</span>",
                             {permanent: true, direction: "center", className: "gm-road-label", interactive: false});
        }
    });
})();
