"""Small shared UI pieces: KPI cards, messages, and a guard that turns errors into Chinese messages."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from dash import html, no_update
from dash.exceptions import PreventUpdate

from gridmap._errors import GridmapError
from gridmap.access import PermissionDenied

__all__ = ["DROPDOWN_LABELS", "card", "date_picker", "dropdown", "error_text", "guarded", "message"]

#: Chinese texts of every dcc.Dropdown (Dash's defaults are English: "Search", "No options found"...).
DROPDOWN_LABELS = {"select_all": "全选", "deselect_all": "取消全选", "selected_count": "已选 {num_selected} 项",
                   "search": "搜索", "clear_search": "清除搜索", "clear_selection": "清除选择",
                   "no_options_found": "无匹配结果"}

log = logging.getLogger("gridmap.dashboard")


def dropdown(options: Any, value: Any = None, **kwargs: Any) -> Any:
    """A ``dcc.Dropdown`` with Chinese texts (placeholder 请选择…, search, no results)."""
    from dash import dcc

    kwargs.setdefault("placeholder", "请选择…")
    kwargs.setdefault("labels", DROPDOWN_LABELS)
    return dcc.Dropdown(options, value, **kwargs)


def date_picker(**kwargs: Any) -> Any:
    """A ``dcc.DatePickerSingle`` with Chinese formats (2026年12月3日, weeks starting on Monday)."""
    from dash import dcc

    kwargs.setdefault("display_format", "YYYY年M月D日")
    kwargs.setdefault("month_format", "YYYY年M月")
    kwargs.setdefault("placeholder", "选择日期")
    kwargs.setdefault("first_day_of_week", 1)
    return dcc.DatePickerSingle(**kwargs)


def card(title: str, value: str, sub: str = "", tone: str = "", card_id: str | None = None) -> html.Div:
    """A KPI card: title, big value, small note; ``tone`` is ``good``/``bad``/''."""
    return html.Div([html.Div(title, className="t"), html.Div(value, className=f"v {tone}"),
                     html.Div(sub, className="s")], className="gm-card", id=card_id or "")


def message(text: str, kind: str = "info") -> html.Div:
    """A message line (``ok``, ``err`` or ``info``)."""
    return html.Div(text, className=f"gm-msg {kind}")


def error_text(exc: BaseException) -> str:
    """The text shown for an error, in Chinese then English (never a stack trace).

    A :class:`~gridmap._errors.GridmapError` (a validation error names its field,
    a refusal says why) is shown as ``中文 / English``.
    """
    if isinstance(exc, GridmapError):
        field = getattr(exc, "field", None)
        zh = f"{exc.message_zh}" + (f"（字段：{field}）" if field and str(field) not in exc.message_zh else "")
        return zh if exc.message_en == exc.message_zh else f"{zh} / {exc.message_en}"
    name = type(exc).__name__
    if "Operational" in name or "Unavailable" in name or "Interface" in name:
        return "数据库暂时无法连接，请稍后重试（Database unavailable）"
    return "操作失败，请稍后重试；如持续出现请联系管理员"


def guarded(n_outputs: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a callback whose LAST output is a message area: errors become a message there."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except PreventUpdate:
                raise
            except PermissionDenied as exc:  # refused (and audited where raised): no stack trace
                out = [no_update] * (n_outputs - 1) + [message(error_text(exc), "err")]
                return out[0] if n_outputs == 1 else out
            except Exception as exc:
                log.exception("callback %s failed", fn.__name__)
                out = [no_update] * (n_outputs - 1) + [message(error_text(exc), "err")]
                return out[0] if n_outputs == 1 else out

        return wrapper

    return deco
