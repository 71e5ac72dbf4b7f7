import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modelops.core.patches import content_hash, is_subset, merge_patch, owned_fields_match

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, written out independently of the code under test."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def _without_nulls(value: Any) -> Any:
    # Merge patches cannot express a null value inside an object: it means "remove".
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


@given(objects, objects)
def test_merge_patch_turns_old_into_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    old, new = _without_nulls(old), _without_nulls(new)
    assert apply_merge_patch(old, merge_patch(old, new)) == new


@given(objects)
def test_merge_patch_of_equal_objects_is_empty(value: dict[str, Any]) -> None:
    assert merge_patch(value, copy.deepcopy(value)) == {}


@given(objects)
def test_every_object_is_a_subset_of_itself(value: dict[str, Any]) -> None:
    assert is_subset(value, copy.deepcopy(value))


def test_fields_added_by_others_do_not_count_as_a_difference() -> None:
    desired = {"spec": {"predictor": {"minReplicas": 1}}}
    observed = {"spec": {"predictor": {"minReplicas": 1, "model": {"name": "kserve-container"}}}}
    assert is_subset(desired, observed)


def test_a_changed_or_missing_value_is_a_difference() -> None:
    desired = {"spec": {"predictor": {"minReplicas": 1}}}
    assert not is_subset(desired, {"spec": {"predictor": {"minReplicas": 2}}})
    assert not is_subset(desired, {"spec": {"predictor": {}}})
    assert not is_subset({"a": [1, 2]}, {"a": [1]})


def test_owned_fields_ignore_status_and_foreign_metadata() -> None:
    desired = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "metadata": {"name": "x", "labels": {"a": "1"}},
        "spec": {"predictor": {}},
    }
    observed = {
        "metadata": {"labels": {"a": "1", "extra": "2"}, "resourceVersion": "5"},
        "spec": {"predictor": {"x": 1}},
        "status": {"conditions": []},
    }
    assert owned_fields_match(desired, observed)
    observed["metadata"]["labels"]["a"] = "9"
    assert not owned_fields_match(desired, observed)


@given(objects)
def test_content_hash_ignores_key_order(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert content_hash(value) == content_hash(reordered)
    assert len(content_hash(value)) == 16
