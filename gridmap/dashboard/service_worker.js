// The page shell kept for a poor connection (issue 18), served as /assets/gm-sw.js with the scope "/" (public like
// the page's other scripts: the browser's check for a new version, from the sign-in page too, must not touch the
// session), registered by gridmap_steward.js. Network first: every GET of the page, its layout, scripts and the
// road layer is answered by the server when it can be, and the copy kept here when it cannot (the page then shows the day's list kept in
// localStorage, and its outbox keeps the visits saved meanwhile). Writes (POST) are never kept or answered here.
// (Kept outside assets/: Dash loads every script there into the page.)
var CACHE = "gm-shell-v1";
var KEEP = [/^\/$/, /^\/_dash-layout$/, /^\/_dash-dependencies$/, /^\/_dash-component-suites\//, /^\/assets\//,
            /^\/_favicon/, /^\/gm-layers\/(roads|district)\.json$/];

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (e) { e.waitUntil(self.clients.claim()); });
self.addEventListener("message", function (e) {
    if (e.data === "forget") { e.waitUntil(caches.delete(CACHE)); }  // signed out: nothing kept
});
self.addEventListener("fetch", function (e) {
    var r = e.request;
    if (r.method !== "GET") { return; }
    var u = new URL(r.url);
    if (u.origin !== self.location.origin || !KEEP.some(function (k) { return k.test(u.pathname); })) { return; }
    e.respondWith(fetch(r).then(function (resp) {
        if (resp.ok && !resp.redirected && resp.type === "basic") {
            var copy = resp.clone();
            caches.open(CACHE).then(function (c) { return c.put(r, copy); });
        }
        return resp;
    }).catch(function () {
        return caches.match(r).then(function (m) { return m || Response.error(); });
    }));
});
