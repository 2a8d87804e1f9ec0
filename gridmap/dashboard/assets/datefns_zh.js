// Simplified-Chinese texts of the date pickers (Dash's picker formats with date-fns and takes its locale from
// window.dateFns.locale, falling back to the first one registered): weekdays 一…日, months 1月…12月.
(function () {
    var none = function () { return null; };
    var days = ["日", "一", "二", "三", "四", "五", "六"];
    var periods = {am: "上午", pm: "下午", midnight: "午夜", noon: "中午", morning: "早上", afternoon: "下午",
                   evening: "晚上", night: "夜间"};
    var zhCN = {
        code: "zh-CN",
        localize: {
            ordinalNumber: function (n) { return String(n); },
            era: function (i) { return ["公元前", "公元"][i]; },
            quarter: function (q) { return "第" + q + "季度"; },
            month: function (m, o) { return (o && o.width === "narrow") ? String(m + 1) : (m + 1) + "月"; },
            day: function (d, o) {
                var w = (o && o.width) || "wide";
                return w === "wide" ? "星期" + days[d] : (w === "abbreviated" ? "周" + days[d] : days[d]);
            },
            dayPeriod: function (p) { return periods[p] || p; }
        },
        formatLong: {
            date: function () { return "yyyy年M月d日"; },
            time: function () { return "HH:mm:ss"; },
            dateTime: function () { return "{{date}} {{time}}"; }
        },
        formatDistance: function (token, count) { return String(count); },
        formatRelative: function () { return "P"; },
        match: {ordinalNumber: none, era: none, quarter: none, month: none, day: none, dayPeriod: none},
        options: {weekStartsOn: 1, firstWeekContainsDate: 4}
    };
    window.dateFns = window.dateFns || {};
    window.dateFns.locale = Object.assign({zhCN: zhCN}, window.dateFns.locale || {});
})();
