"""Query templates: variables filled in, hostile values unable to change a query."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from modelops.core.promql import TemplateError, escape_string, render

FIELD = "spec.analysis.metrics[0].query"
VALUES = {"namespace": "risk", "isvc": "fraud", "version": "7", "window": "30s"}


def unescape(content: str) -> str:
    """How PromQL reads a double-quoted string's content."""
    table = {"\\\\": "\\", '\\"': '"', "\\n": "\n", "\\r": "\r", "\\t": "\t"}
    return re.sub(r"\\[\\\"nrt]", lambda m: table[m.group(0)], content)


def test_variables_are_filled_in_and_spaces_in_braces_do_not_matter() -> None:
    query = render(
        'rate(model_infer_request_failure_total{namespace="{{namespace}}", '
        'model_version="{{ version }}"}[{{ window }}])',
        VALUES,
        field=FIELD,
    )
    assert query == (
        'rate(model_infer_request_failure_total{namespace="risk", model_version="7"}[30s])'
    )


def test_an_unknown_variable_names_the_field_and_the_known_ones() -> None:
    problem = render('x{a="{{ nmespace }}"}', VALUES, field=FIELD)
    assert isinstance(problem, TemplateError)
    assert FIELD in problem.message and "nmespace" in problem.message
    assert "{{ namespace }}" in problem.message


def test_a_variable_without_a_value_here_is_an_error() -> None:
    problem = render('x{r="{{ revision }}"}', VALUES, field=FIELD)
    assert isinstance(problem, TemplateError) and "revision" in problem.message


def test_a_hostile_value_outside_quotes_is_refused() -> None:
    hostile = {**VALUES, "window": "30s]) or vector(1"}
    problem = render("rate(x[{{ window }}])", hostile, field=FIELD)
    assert isinstance(problem, TemplateError)
    assert "inside quotes" in problem.message


def test_a_quote_in_the_template_string_before_the_variable_is_honoured() -> None:
    query = render('x{a="say \\"hi\\" {{ isvc }}"}', VALUES, field=FIELD)
    assert query == 'x{a="say \\"hi\\" fraud"}'


@given(st.text())
def test_a_hostile_label_value_stays_one_string(value: str) -> None:
    query = render('up{namespace="{{ namespace }}"} > 0', {**VALUES, "namespace": value},
                   field=FIELD)  # fmt: skip
    assert isinstance(query, str)
    assert query.startswith('up{namespace="') and query.endswith('"} > 0')
    content = query[len('up{namespace="') : -len('"} > 0')]
    # No unescaped quote ends the string early, and PromQL reads back exactly the value.
    assert re.search(r'(?<!\\)(\\\\)*"', content) is None
    assert unescape(content) == value


@given(st.text())
def test_escaping_round_trips(value: str) -> None:
    assert unescape(escape_string(value)) == value
