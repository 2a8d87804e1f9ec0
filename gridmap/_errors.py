"""The package's own exceptions, each with a Chinese and an English message."""

from __future__ import annotations


class GridmapError(Exception):
    """Base class: a problem a user can act on, told in Chinese and English.

    Parameters
    ----------
    message_en
        What went wrong and what to do, in English.
    message_zh
        The same in Chinese (shown in the dashboard and reports).
    """

    def __init__(self, message_en: str, message_zh: str | None = None) -> None:
        self.message_en = message_en
        self.message_zh = message_zh or message_en
        super().__init__(f"{self.message_zh} / {self.message_en}")


class DataDirError(GridmapError):
    """The geodata directory or one of its files is missing or unreadable."""


class ValidationError(GridmapError):
    """An input value breaks a rule; names the row, field and reason.

    Parameters
    ----------
    field
        The field (column) that is wrong.
    value
        The offending value, as given.
    code
        A short machine-readable reason code (for reports and tests).
    row
        The row number a spreadsheet shows (header = 1), if any.
    """

    def __init__(
        self,
        message_en: str,
        message_zh: str | None = None,
        *,
        field: str | None = None,
        value: object = None,
        code: str = "invalid",
        row: int | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.code = code
        self.row = row
        prefix_en = f"row {row}, " if row is not None else ""
        prefix_zh = f"第{row}行，" if row is not None else ""
        if field is not None:
            prefix_en += f"field {field}: "
            prefix_zh += f"字段“{field}”："
        super().__init__(prefix_en + message_en, prefix_zh + (message_zh or message_en))


class ConflictError(GridmapError):
    """A save was refused because someone else changed the record meanwhile."""


class CoordinateError(ValidationError):
    """A coordinate is outside Haidian or in an unexpected reference system."""
