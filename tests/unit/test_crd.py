"""The CRD in crds/ is generated from modelops.api and must stay structural."""

from pathlib import Path
from typing import Any

import yaml

from modelops.api.crd import model_deployment_crd, render_chart_crd_template, render_crd_yaml

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "crds" / "modeldeployments.modelops.io.yaml"


def walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, child in node.get("properties", {}).items():
            yield from walk(child, f"{path}.{key}")
        if "items" in node:
            yield from walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}{{}}")


def schema() -> dict[str, Any]:
    crd = model_deployment_crd()
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.read_text() == render_crd_yaml(), (
        "crds/ is out of date with modelops.api: run `make crds` and commit the result"
    )


def test_the_charts_crd_template_matches_the_models() -> None:
    committed = REPO / "charts" / "modelops" / "templates" / "crds.yaml"
    assert committed.read_text() == render_chart_crd_template(), (
        "charts/modelops/templates/crds.yaml is out of date: run `make crds` and commit the result"
    )


def test_every_node_has_a_type_and_no_json_schema_leftovers() -> None:
    for path, node in walk(schema()):
        assert "$ref" not in node and "allOf" not in node and "title" not in node, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
        else:
            assert "type" in node, f"{path} has no type"


def test_every_spec_field_is_described_for_kubectl_explain() -> None:
    spec = schema()["properties"]["spec"]
    undocumented = [path for path, node in walk(spec) if path and not node.get("description")]
    undocumented = [p for p in undocumented if not p.endswith(("[]", "{}"))]
    assert undocumented == []


def test_cel_rules_on_strings_and_lists_have_cost_bounds() -> None:
    # The API server refuses CEL rules whose estimated cost is unbounded.
    for path, node in walk(schema()):
        if node.get("x-kubernetes-validations") and node.get("type") == "string":
            assert "maxLength" in node, path
        if node.get("type") == "array" and path.startswith(".spec"):
            assert "maxItems" in node, path


def test_resource_identity_and_columns() -> None:
    crd = model_deployment_crd()
    assert crd["metadata"]["name"] == "modeldeployments.modelops.io"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "ModelDeployment",
        "modeldeployments",
        ["md"],
    )
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [column["name"] for column in version["additionalPrinterColumns"]]
    assert columns == ["Model", "Version", "Phase", "Traffic", "Age"]


def test_rendered_yaml_round_trips() -> None:
    assert yaml.safe_load(render_crd_yaml()) == model_deployment_crd()
