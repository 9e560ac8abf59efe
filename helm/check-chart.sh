#!/usr/bin/env bash
# Offline checks of the Helm chart, its alerts and its dashboard (`make chart-check`).
#
#   1. helm lint --strict and a client-side dry-run install, with the defaults and every values
#      file of the matrix
#   2. helm template over the matrix: defaults, helm/examples/*.yaml, helm/ci/*.yaml
#   3. every rendered manifest against the Kubernetes 1.35 schemas (kubernetes-validate --strict)
#   4. cross-references the schemas cannot see, and the structure of KEDA ScaledObjects (whose
#      CRD schema is not available offline) (helm/chart_checks.py manifests)
#   5. checkov policies over the rendered manifests
#   6. bad values (helm/ci/bad/*.yaml) are rejected, with the message each file expects
#   7. promtool check rules + promtool test rules for the alerts
#   8. every dashboard query parsed by promtool; every series of dashboard and alerts exported
#   9. every value of values.yaml documented, and helm/README.md's values table current
#
# Tools (make chart-check installs them): HELM (helm binary), TOOLS_VENV (kubernetes-validate,
# checkov), PY (the project's python, for chart_checks.py), promtool on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM=${HELM:-.tools/helm/helm}
TOOLS_VENV=${TOOLS_VENV:-.venv-tools}
PY=${PY:-.venv/bin/python}
CHART=helm/warriorcoder
RELEASE=arena
NAMESPACE=arena
K8S_VERSION=1.35

# checkov checks skipped for the whole chart, each with its reason. (The helm test pod skips the
# probe checks in its own annotations.)
CHECKOV_SKIPS=(
  # Image should use a digest: tags are pinned (the chart's appVersion, a vLLM release), a digest
  # can be set with global.image.digest, and the default must also work with a locally built image.
  CKV_K8S_43
  # Image pull policy should be Always: pinned release tags do not move, and re-pulling a ~10 GB
  # vLLM image on every start delays the model servers for nothing (global.image.pullPolicy).
  CKV_K8S_15
  # Secrets as files rather than environment variables: the services read their settings only from
  # WARRIORCODER_* variables (warriorcoder/service/settings.py; the MongoDB URI is a SecretStr,
  # never printed), and vLLM takes HF_TOKEN and VLLM_API_KEY from its environment.
  CKV_K8S_35
)

for tool in "$HELM" "$TOOLS_VENV/bin/kubernetes-validate" "$TOOLS_VENV/bin/checkov" "$PY"; do
  [[ -x "$tool" ]] || { echo "missing $tool (run make chart-check)" >&2; exit 1; }
done
command -v promtool >/dev/null || { echo "promtool not found: run 'make tools' (as root)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# helm keeps its caches and config in the scratch folder: nothing outside the repo is touched.
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"
mkdir -p "$work/rendered"

step() { printf '\n== %s\n' "$*"; }
# Run a command, showing its output only when it fails.
quietly() { "$@" >"$work/output.txt" 2>&1 || { cat "$work/output.txt" >&2; return 1; }; }

matrix=(helm/examples/*.yaml helm/ci/*.yaml)

step "helm lint --strict, helm install --dry-run=client ($("$HELM" version --short))"
quietly "$HELM" lint --strict "$CHART"
quietly "$HELM" install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --dry-run=client
echo "  defaults: ok (lint, dry-run install with NOTES)"
for values in "${matrix[@]}"; do
  quietly "$HELM" lint --strict "$CHART" -f "$values"
  # A client-side dry-run install also renders NOTES.txt, which helm template leaves out.
  quietly "$HELM" install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --dry-run=client -f "$values"
  echo "  $values: ok (lint, dry-run install with NOTES)"
done

step "helm template over the values matrix"
render() {  # render NAME [helm args...]
  local name=$1; shift
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" "$@" >"$work/rendered/$name.yaml"
  local kinds
  kinds=$(grep -E '^kind: ' "$work/rendered/$name.yaml" | sort | uniq -c | awk '{printf "%s %s, ", $1, $3}')
  echo "  $name: ${kinds%, }"
}
render defaults
for values in "${matrix[@]}"; do
  render "$(basename "$values" .yaml)" -f "$values"
done

step "kubernetes-validate --strict -k $K8S_VERSION (ServiceMonitor, PrometheusRule and KEDA's ScaledObject and TriggerAuthentication are CRDs without a schema here: step 4 checks them)"
"$TOOLS_VENV/bin/kubernetes-validate" --strict -k "$K8S_VERSION" --quiet "$work"/rendered/*.yaml 2>&1 \
  | { grep -Ev "Couldn't find schema for kind ((ServiceMonitor|PrometheusRule) with api version monitoring.coreos.com/v1|(ScaledObject|TriggerAuthentication) with api version keda.sh/v1alpha1)" || true; }
rendered=("$work"/rendered/*.yaml)
echo "  ${#rendered[@]} rendered releases valid"

step "cross-references of the rendered releases (helm/chart_checks.py manifests)"
"$PY" helm/chart_checks.py manifests "$work"/rendered/*.yaml

step "checkov (skipped for the whole chart: ${CHECKOV_SKIPS[*]}, reasons in $0)"
skips=$(IFS=,; echo "${CHECKOV_SKIPS[*]}")
if ! "$TOOLS_VENV/bin/checkov" -d "$work/rendered" --framework kubernetes --compact \
    --skip-download --skip-check "$skips" >"$work/checkov.txt" 2>&1; then
  grep -A2 -E '^Check: ' "$work/checkov.txt" | grep -B1 -A1 FAILED >&2 || cat "$work/checkov.txt" >&2
  echo "checkov found policy failures" >&2; exit 1
fi
grep -E '^(Passed|Failed)' "$work/checkov.txt" | sed 's/^/  /'

step "bad values are rejected (helm/ci/bad)"
for values in helm/ci/bad/*.yaml; do
  expected=$(sed -n 's/^# expect: //p' "$values" | head -1)
  [[ -n "$expected" ]] || { echo "  $values has no '# expect:' line" >&2; exit 1; }
  if "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" -f "$values" >/dev/null 2>"$work/error.txt"; then
    echo "  $values: ACCEPTED, but must be rejected ($expected)" >&2; exit 1
  fi
  grep -qF -- "$expected" "$work/error.txt" || {
    echo "  $values: rejected, but without '$expected':" >&2; cat "$work/error.txt" >&2; exit 1; }
  echo "  $(basename "$values"): rejected: $expected"
done

step "alerts: promtool check rules + test rules"
promtool check rules "$CHART/files/prometheus/warriorcoder-alerts.yaml" | sed 's/^/  /'
promtool test rules helm/tests/alerts.test.yaml | sed 's/^/  /'

step "dashboard: every query parsed by promtool; every series exported by the services"
"$PY" helm/chart_checks.py dashboard-rules "$CHART/files/dashboards/warriorcoder-arena.json" "$work/dashboard-rules.yaml"
promtool check rules "$work/dashboard-rules.yaml" | sed 's/^/  /'
"$PY" helm/chart_checks.py metric-names "$CHART/files/dashboards/warriorcoder-arena.json" \
  "$CHART/files/prometheus/warriorcoder-alerts.yaml" helm/tests/alerts.test.yaml

step "values documentation (# -- comments, helm/README.md table)"
"$PY" helm/chart_checks.py values-doc

step "chart checks passed"
