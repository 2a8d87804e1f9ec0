"""ID-number errors say what is wrong without revealing the number or the check digit it should have (#14 item 4)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridmap._errors import ValidationError
from gridmap.domain.idcard import check_digit, make_id_number, parse_id_number


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(1966, 12, 31)), st.integers(0, 999),
       st.sampled_from(["男", "女"]))
def test_a_wrong_check_digit_is_refused_without_naming_the_right_one(born: date, seq: int, sex: str) -> None:
    good = make_id_number("110108", born, seq, sex)
    wrong = good[:17] + ("1" if check_digit(good[:17]) != "1" else "2")
    with pytest.raises(ValidationError) as exc:
        parse_id_number(wrong)
    err = exc.value
    assert err.code == "id_checksum"
    for text in (err.message_en, err.message_zh, str(err)):
        assert good[:17] not in text and wrong not in text
        assert "expected" not in text and "应为" not in text


def test_an_impossible_birth_date_is_refused_without_echoing_the_digits() -> None:
    number = "110108" + "19401332" + "0012"
    with pytest.raises(ValidationError) as exc:
        parse_id_number(number)
    assert exc.value.code == "id_birth_date"
    assert "19401332" not in exc.value.message_en + exc.value.message_zh
