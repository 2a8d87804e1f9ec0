// Parts of the page built only once they are scrolled into view (their first build is heavy for the browser):
// the supervisor's table (ag-grid). When at least LAZY_SHARE of its box is visible, the Store named by the box's
// ``data-lazy`` attribute is set (``dash_clientside.set_props``), which makes the server send the grid.
(function () {
    var LAZY_SHARE = 0.35;
    var boxes = [["sup-table-box", "sup-table-on", "sup-table"]];
    function watch() {
        if (!window.IntersectionObserver || !(window.dash_clientside && window.dash_clientside.set_props)) { return; }
        boxes.forEach(function (b) {
            var box = document.getElementById(b[0]);
            if (!box || box.__gmLazy || document.getElementById(b[2])) { return; }
            box.__gmLazy = true;
            var io = new IntersectionObserver(function (entries) {
                entries.forEach(function (e) {
                    if (e.isIntersecting && e.intersectionRatio >= LAZY_SHARE) {
                        io.disconnect();
                        window.dash_clientside.set_props(b[1], {data: Date.now()});
                    }
                });
            }, {threshold: [0, LAZY_SHARE, 1]});
            io.observe(box);
        });
    }
    setInterval(watch, 250);
})();
