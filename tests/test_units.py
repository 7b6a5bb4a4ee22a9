from __future__ import annotations

import pytest

from nas.errors import NasError
from nas.units import human, parse_count


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5M", 5_000_000),
        ("4.5e6", 4_500_000),
        ("500k", 500_000),
        ("5000000", 5_000_000),
        ("2.5m", 2_500_000),
        (" 1G ", 1_000_000_000),
        (300, 300),
    ],
)
def test_parse_count_accepts_the_documented_forms(text: str, expected: int) -> None:
    assert parse_count(text) == expected


@pytest.mark.parametrize("text", ["five", "5MB", "", "-5M", "0", "1e", "5 M M", "nan", "inf"])
def test_parse_count_refuses_anything_else_with_one_line(text: str) -> None:
    with pytest.raises(NasError) as info:
        parse_count(text)
    assert "\n" not in str(info.value)


def test_human() -> None:
    assert human(4_913_705) == "4.91M"
    assert human(269_722) == "269.72k"
    assert human(12) == "12"


def test_limits_that_round_to_zero_are_refused() -> None:
    with pytest.raises(NasError, match="must be at least 1"):
        parse_count("0.4")
