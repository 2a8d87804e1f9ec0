// Styling functions of the gridmap dashboard map (referenced as {"variable": "gridmap.<name>"}).
window.gridmap = Object.assign({}, window.gridmap, {
    choropleth: function (feature) {
        var p = feature.properties || {};
        return {color: "#1f4e79", weight: p.level === "grid" ? 0.6 : 1.5, fillColor: p.color || "#bdbdbd",
                fillOpacity: 0.55};
    },
    before: function (feature) {
        return {color: "#7f7f7f", weight: 2, dashArray: "6 4", fill: false};
    },
    roads: function (feature) {
        var k = (feature.properties || {}).kind || "";
        var w = /motorway|trunk/.test(k) ? 2.5 : (/primary/.test(k) ? 2 : 1.2);
        return {color: "#c9b79c", weight: w, opacity: 0.9};
    },
    estimated: function (feature) {
        return {color: "#555", weight: 1, dashArray: "4 4", fillColor: "#787878", fillOpacity: 0.35};
    },
    boundary: function (feature) {
        return {color: "#1f4e79", weight: 2.5, fill: false};
    },
    elder: function (feature, latlng) {
        var c = {visited: "#1a9850", due: "#f0ad4e", overdue: "#d73027"}[feature.properties.s] || "#777";
        return L.circleMarker(latlng, {radius: 5, color: "#fff", weight: 1, fillColor: c, fillOpacity: 0.95});
    },
    station: function (feature, latlng) {
        var health = /卫生|诊所/.test(feature.properties.kind || "");
        return L.circleMarker(latlng, {radius: 4, color: health ? "#6a3d9a" : "#1f78b4", weight: 1,
                                       fillColor: health ? "#cab2d6" : "#a6cee3", fillOpacity: 0.9});
    },
    hotspot: function (feature, latlng) {
        var n = feature.properties.n || 1;
        var c = feature.properties.c || "#e34a33";  // colour by the age of the oldest open hazard
        return L.circleMarker(latlng, {radius: 4 + 3 * Math.sqrt(n), color: "#7f0000", weight: 1,
                                       fillColor: c, fillOpacity: 0.6});
    },
    device: function (feature, latlng) {
        var c = {smoke_alarm: "#e6550d", emergency_terminal: "#3182bd", fire_kit: "#756bb1",
                 health_monitor: "#31a354"}[feature.properties.k] || "#636363";
        var m = L.marker(latlng, {icon: L.divIcon({className: "gm-device", iconSize: [10, 10],
            html: '<div style="width:9px;height:9px;background:' + c + ';border:1px solid #fff"></div>'})});
        var names = {smoke_alarm: "联网烟感报警器", emergency_terminal: "一键式智能终端", fire_kit: "消防四件套",
                     health_monitor: "健康监测设备"};
        m.bindTooltip("设备：" + (names[feature.properties.k] || "其他设备"));
        return m;
    },
    deviceCluster: function (feature, latlng) {
        var n = feature.properties.point_count || 0;
        var m = L.marker(latlng, {icon: L.divIcon({className: "gm-device-cluster", iconSize: [26, 18],
            html: '<div style="background:#3182bd;color:#fff;font-size:11px;line-height:18px;text-align:center;' +
                  'border:1px solid #fff;border-radius:3px">' + n + '</div>'})});
        m.bindTooltip("设备 " + n + " 台（点击放大）");
        return m;
    },
    deviceSummary: function (feature, latlng) {
        var n = feature.properties.dev || 1;
        return L.circleMarker(latlng, {radius: 3 + 1.5 * Math.sqrt(n), color: "#3182bd", weight: 1,
                                       fillColor: "#9ecae1", fillOpacity: 0.6});
    },
    hazard: function (feature, latlng) {
        var p = feature.properties || {};
        var c = {low: "#fdae6b", medium: "#fd8d3c", high: "#e6550d", critical: "#a63603"}[p.sev] || "#e6550d";
        var m = L.marker(latlng, {icon: L.divIcon({className: "gm-hazard", iconSize: [16, 16], iconAnchor: [8, 12],
            html: '<div style="color:' + c + ';font-size:16px;line-height:16px;text-shadow:0 0 2px #fff">▲</div>'})});
        m.bindTooltip("隐患：" + p.hz + "（" + p.sev_text + "，" + p.st + "）<br>整改期限 " + p.deadline);
        return m;
    },
    tooltip: function (feature, layer) {
        var p = feature.properties || {};
        if (p.dev !== undefined) {
            layer.bindTooltip(p.name + "：已安装设备 " + p.dev + " 台（烟感 " + p.smoke + "，一键式终端 " +
                              p.term + "）" + (p.cov ? "<br>" + p.cov : ""));
        } else if (p.rate_text !== undefined) {
            layer.bindTooltip("<b>" + p.label + "</b><br>周探访率 " + p.rate_text + "<br>老人 " + p.elders +
                              " 人，逾期 " + p.overdue + " 人");
        } else if (p.n !== undefined) {
            layer.bindTooltip(p.name + "：未整改隐患 " + p.n + " 处" +
                              (p.age !== undefined ? "，最久已 " + p.age + " 天未整改" : ""));
        } else if (p.kind !== undefined && p.name !== undefined) {
            layer.bindTooltip(p.name + "（" + p.kind + "）");
        }
    }
});
