from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.api.schema_types import DURATION_PATTERN
from modelops.core.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("2m30s", timedelta(seconds=150)),
    ],
)
def test_parses_go_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "s", "5 m", "1d", "-5s", "5m!", "m5"])
def test_rejects_what_is_not_a_duration_and_names_it(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(["ms", "s", "m", "h"])),
        min_size=1,
        max_size=4,
    )
)
def test_every_string_the_crd_pattern_accepts_parses(parts: list[tuple[int, str]]) -> None:
    import re

    text = "".join(f"{number}{unit}" for number, unit in parts)
    assert re.match(DURATION_PATTERN, text)
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    expected = sum(number * factor[unit] for number, unit in parts)
    assert parse_duration(text).total_seconds() == pytest.approx(expected)
