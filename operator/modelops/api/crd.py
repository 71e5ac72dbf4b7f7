"""Render the ModelDeployment CustomResourceDefinition from the pydantic models.

`make crds` (python -m modelops.api.crd) writes the result to crds/; a test regenerates it and
fails when the committed copy drifts. The JSON Schema pydantic produces is turned into a
Kubernetes structural schema: references inlined, nullable unions flattened, OpenAPI v3.0
keywords only.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic import BaseModel

from modelops.api.resource import (
    API_VERSION,
    GROUP,
    KIND,
    MAX_NAME_LENGTH,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from modelops.api.spec import ModelDeploymentSpec
from modelops.api.status import ModelDeploymentStatus

CRD_NAME = f"{PLURAL}.{GROUP}"

# JSON Schema keywords a structural schema may carry; everything else pydantic emits is dropped.
_KEPT_KEYWORDS = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "anyOf",
    "x-kubernetes-validations",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
}

PRINTER_COLUMNS = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
    {"name": "Version", "type": "string", "jsonPath": ".status.stable.version"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Traffic", "type": "string", "jsonPath": ".status.traffic"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

NAME_RULE = {
    "rule": f"size(self.metadata.name) <= {MAX_NAME_LENGTH} && "
    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    "message": f"metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', "
    f"starting with a letter) of at most {MAX_NAME_LENGTH} characters: it names the "
    "InferenceService and its Services",
}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI v3 structural schema of a pydantic model, as a CRD embeds it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _convert(raw, definitions)


def _convert(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    reference = node.pop("$ref", None)
    if reference is None and len(node.get("allOf", [])) == 1:
        reference = node.pop("allOf")[0]["$ref"]
    if reference is not None:
        target = definitions[reference.rsplit("/", 1)[-1]]
        # The field's own description and default win over the referenced model's.
        node = {**_convert(target, definitions), **node}

    alternatives = [a for a in node.pop("anyOf", []) if a.get("type") != "null"]
    if node.get("x-kubernetes-int-or-string"):
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    elif len(alternatives) == 1:
        node = {**_convert(alternatives[0], definitions), **node}
    elif alternatives:
        raise ValueError(f"unions other than Optional cannot be structural: {alternatives}")

    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("exclusiveMinimum"), (int, float)) and "minimum" not in node:
        node["minimum"] = node["exclusiveMinimum"]
        node["exclusiveMinimum"] = True
    if "default" in node and node["default"] in (None, [], ""):
        # Empty defaults would only add noise to every stored object.
        del node["default"]

    if "properties" in node:
        node["properties"] = {
            name: _convert(child, definitions) for name, child in node["properties"].items()
        }
        node["type"] = "object"
    if "items" in node:
        node["items"] = _convert(node["items"], definitions)
    additional = node.get("additionalProperties")
    if isinstance(additional, dict) and additional:
        node["additionalProperties"] = _convert(additional, definitions)
    else:
        node.pop("additionalProperties", None)
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node["type"] = "object"

    if "x-kubernetes-validations" in node:
        order = ["rule", "message", "fieldPath", "reason"]
        node["x-kubernetes-validations"] = [
            {key: rule[key] for key in order if key in rule}
            for rule in node["x-kubernetes-validations"]
        ]
    return {key: node[key] for key in _ordered_keys(node) if key in _KEPT_KEYWORDS}


def _ordered_keys(node: dict[str, Any]) -> list[str]:
    # A stable, readable order: what it is first, then its constraints, then its children.
    first = ["type", "description", "default", "enum", "format", "pattern"]
    last = ["required", "properties", "items", "additionalProperties", "x-kubernetes-validations"]
    middle = sorted(k for k in node if k not in first and k not in last)
    return [k for k in first if k in node] + middle + [k for k in last if k in node]


def model_deployment_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition object."""
    spec_schema = structural_schema(ModelDeploymentSpec)
    status_schema = structural_schema(ModelDeploymentStatus)
    root = {
        "type": "object",
        "description": (spec_schema.get("description", "")),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "The API version: " + API_VERSION},
            "kind": {"type": "string", "description": "The kind: " + KIND},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": [NAME_RULE],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": "modelops"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": KIND + "List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["modelops"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


HEADER = "# Generated by `make crds` from modelops.api (operator/modelops/api). Do not edit.\n"


def render_crd_yaml() -> str:
    return HEADER + yaml.safe_dump(model_deployment_crd(), sort_keys=False, width=100)


KEEP_MARKER = "modelops.io/chart-keep-placeholder"


def render_chart_crd_template() -> str:
    """The same CRD as a Helm template (charts/modelops/templates/crds.yaml): rendered only with
    crds.install, kept on uninstall with crds.keep. Template braces in descriptions (the
    analysis variables) are escaped so Helm prints them as they are."""
    crd = model_deployment_crd()
    crd["metadata"]["annotations"] = {KEEP_MARKER: "x"}
    body = yaml.safe_dump(crd, sort_keys=False, width=100)
    body = body.replace("{{", "\x00").replace("}}", '{{ "}}" }}').replace("\x00", '{{ "{{" }}')
    body = body.replace(
        f"  annotations:\n    {KEEP_MARKER}: x\n",
        "  {{- if .Values.crds.keep }}\n  annotations:\n    helm.sh/resource-policy: keep\n  {{- end }}\n",
    )
    return (
        "{{- /* Generated by `make crds` from modelops.api. Do not edit. */ -}}\n"
        "{{- if .Values.crds.install }}\n" + body + "{{- end }}\n"
    )


if __name__ == "__main__":
    sys.stdout.write(render_chart_crd_template() if "--chart" in sys.argv else render_crd_yaml())
