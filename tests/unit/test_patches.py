import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modelops.core.patches import (
    applied_paths,
    content_hash,
    fields_v1_paths,
    is_subset,
    merge_patch,
    owned_fields_match,
)

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


def fields_v1_of(value: Any) -> dict[str, Any]:
    """fieldsV1 as the API server records an apply (written apart from the code under test)."""
    if isinstance(value, dict) and value:
        return {f"f:{key}": fields_v1_of(item) for key, item in value.items()}
    return {}


def applied(manifest: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`manifest` as stored after our apply, with defaults another writer added (`extra`)."""
    stored = copy.deepcopy(manifest)
    owned = {"metadata": {"labels": manifest["metadata"]["labels"]}, "spec": manifest["spec"]}
    stored["metadata"]["managedFields"] = [
        {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {}}},
        {"manager": "modelops", "operation": "Apply", "fieldsV1": fields_v1_of(owned)},
    ]
    for key, value in (extra or {}).items():
        stored["spec"]["predictor"][key] = value
    return stored


MANIFEST = {
    "metadata": {"name": "m", "labels": {"a": "1"}},
    "spec": {"predictor": {"minReplicas": 1, "model": {"storageUri": "s3://x"}},
             "canary": [{"predictor": {"name": "v8"}, "trafficPercent": 10}]},
}  # fmt: skip


def test_an_applied_object_matches_although_others_added_fields() -> None:
    assert owned_fields_match(MANIFEST, applied(MANIFEST, {"containerConcurrency": 0}))


def test_a_field_we_stopped_writing_is_a_difference_although_every_value_is_there() -> None:
    without_canary = copy.deepcopy(MANIFEST)
    del without_canary["spec"]["canary"]
    stored = applied(MANIFEST)
    assert is_subset({"spec": without_canary["spec"]}, stored)  # values alone would miss it
    assert not owned_fields_match(without_canary, stored)


def test_a_changed_value_or_a_new_field_is_a_difference() -> None:
    changed = copy.deepcopy(MANIFEST)
    changed["spec"]["predictor"]["minReplicas"] = 2
    assert not owned_fields_match(changed, applied(MANIFEST))
    grown = copy.deepcopy(MANIFEST)
    grown["spec"]["predictor"]["maxReplicas"] = 3
    assert not owned_fields_match(grown, applied(MANIFEST, {"maxReplicas": 3}))


def test_without_our_apply_entry_values_decide() -> None:
    stored = copy.deepcopy(MANIFEST)
    assert owned_fields_match(MANIFEST, stored)


@given(objects)
def test_applied_paths_match_the_fields_the_api_server_records(value: dict[str, Any]) -> None:
    assert applied_paths(value) == fields_v1_paths(fields_v1_of(value)) or value == {}
