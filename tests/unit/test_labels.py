import re

from hypothesis import given
from hypothesis import strategies as st

from modelops.core.labels import label_value

VALID = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def test_valid_values_pass_unchanged() -> None:
    assert label_value("fraud-detector") == "fraud-detector"
    assert label_value("Fraud_v2.1") == "Fraud_v2.1"


def test_invalid_names_become_readable_valid_values() -> None:
    value = label_value("team/fraud detector")
    assert value.startswith("team-fraud-detector-")
    assert VALID.match(value)


@given(st.text(max_size=300))
def test_any_name_becomes_a_valid_label_value(name: str) -> None:
    value = label_value(name)
    assert len(value) <= 63
    assert VALID.match(value)


@given(st.text(min_size=1, max_size=100), st.text(min_size=1, max_size=100))
def test_different_invalid_names_do_not_collide(first: str, second: str) -> None:
    if first != second and label_value(first) != first and label_value(second) != second:
        assert label_value(first) != label_value(second)
