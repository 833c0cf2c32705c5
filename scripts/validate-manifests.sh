#!/usr/bin/env bash
# Renders every kustomize overlay (and each base on its own) with `kubectl kustomize` and validates every
# object offline against the real Kubernetes OpenAPI schemas (the `kubernetes-validate` package bundles
# them; strict mode rejects unknown fields). Objects of our own CRD (PredictiveAutoscaler) are validated
# against the openAPIV3Schema of manifests/crd/predictiveautoscaler.yaml with `jsonschema`. First, the
# operator's alert rules are checked and unit-tested with promtool.
# Exits non-zero on any failure. Usage: scripts/validate-manifests.sh   (K8S_VERSION=1.32 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION="${K8S_VERSION:-1.32}"
VENV=target/venv-validate
OUT=target/manifests-rendered

command -v kubectl >/dev/null 2>&1 || {
  echo "error: kubectl is missing (Debian: apt-get install kubernetes-client; or scripts/install-test-deps.sh)" >&2
  exit 1
}
if [ ! -f manifests/crd/predictiveautoscaler.yaml ]; then
  echo "error: manifests/crd/predictiveautoscaler.yaml is missing (generate it with \`prescient crd\`)" >&2
  exit 1
fi

# Pinned validators in their own virtual environment; once installed, everything below runs offline.
if ! "$VENV/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    'kubernetes-validate==1.37.0' 'jsonschema==4.26.0' 'PyYAML==6.0.4'
fi

# The operator's alert rules (manifests/prometheus/prescient-alerts.yml): valid, and their unit tests pass.
command -v promtool >/dev/null 2>&1 || {
  echo "error: promtool is missing (Debian: apt-get install prometheus; or scripts/install-test-deps.sh)" >&2
  exit 1
}
(cd manifests/prometheus && promtool check rules prescient-alerts.yml && promtool test rules prescient-alerts.test.yml) || {
  echo "FAIL: manifests/prometheus/prescient-alerts.yml (promtool check rules / test rules)" >&2
  exit 1
}

rm -rf "$OUT"
mkdir -p "$OUT"
targets=(overlays/dev overlays/production base sample-app prometheus examples crd grafana)
for target in "${targets[@]}"; do
  file="$OUT/$(echo "$target" | tr / -).yaml"
  if ! kubectl kustomize "manifests/$target" >"$file"; then
    echo "FAIL: kubectl kustomize manifests/$target" >&2
    exit 1
  fi
  echo "rendered manifests/$target -> $file ($(grep -c '^kind:' "$file") objects)"
done

"$VENV/bin/python" - "$K8S_VERSION" manifests/crd/predictiveautoscaler.yaml "$OUT"/*.yaml <<'PY'
"""Validates rendered manifests: built-in kinds with kubernetes-validate (strict), our CRs with the CRD."""
import copy
import sys

import jsonschema
import kubernetes_validate
import yaml

version, crd_path, files = sys.argv[1], sys.argv[2], sys.argv[3:]


def openapi_to_jsonschema(node):
    """OpenAPI v3.0 schema -> strict JSON Schema: `nullable` becomes a type union, boolean exclusive bounds
    become numeric ones, unknown fields are rejected, x-kubernetes-* extensions are dropped (CEL rules
    are not evaluated offline)."""
    if isinstance(node, dict):
        out = {k: openapi_to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
        # OpenAPI 3.0 (draft 4) writes exclusive bounds as booleans beside minimum/maximum.
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(out.get(bound), bool):
                if out.pop(bound) and limit in out:
                    out[bound] = out.pop(limit)
        # kubectl validates strictly (unknown fields are errors), as does this script.
        if ("properties" in out and "additionalProperties" not in out
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        if node.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(node, list):
        return [openapi_to_jsonschema(v) for v in node]
    return node


with open(crd_path) as f:
    crds = [d for d in yaml.safe_load_all(f) if d]
custom = {}  # (group/version, kind) -> (schema, scope)
for crd in crds:
    if crd.get("kind") != "CustomResourceDefinition":
        sys.exit(f"FAIL {crd_path}: expected a CustomResourceDefinition, got {crd.get('kind')}")
    spec = crd["spec"]
    for v in spec["versions"]:
        schema = openapi_to_jsonschema(copy.deepcopy(v["schema"]["openAPIV3Schema"]))
        # The API server always accepts the object's own type and metadata at the root.
        schema.setdefault("properties", {}).update(
            {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})
        custom[(f"{spec['group']}/{v['name']}", spec["names"]["kind"])] = (schema, spec["scope"])

failures = 0
checked = 0
for path in files:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for doc in docs:
        checked += 1
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        key = (doc.get("apiVersion"), doc.get("kind"))
        if not doc.get("metadata", {}).get("name"):
            print(f"FAIL {path}: {name}: metadata.name is required")
            failures += 1
            continue
        if key in custom:
            schema, scope = custom[key]
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
            if scope == "Namespaced" and not doc["metadata"].get("namespace"):
                print(f"FAIL {path}: {name}: a namespaced custom resource without a namespace")
                failures += 1
            for e in errors:
                print(f"FAIL {path}: {name}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}")
                failures += 1
            if not errors:
                print(f"ok   {path}: {name} (against the CRD schema)")
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            print(f"ok   {path}: {name} (Kubernetes {version}, strict)")
        except kubernetes_validate.ValidationError as e:
            print(f"FAIL {path}: {name}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}")
            failures += 1
        except kubernetes_validate.SchemaNotFoundError:
            # Never skip silently: a kind we have no schema for is a failure.
            print(f"FAIL {path}: {name}: no schema for {key[0]} {key[1]} (not built in, not our CRD)")
            failures += 1

print(f"{checked} objects checked, {failures} failures")
sys.exit(1 if failures or not checked else 0)
PY
