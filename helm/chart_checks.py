"""Offline checks of the rendered chart that no schema validator makes (run by check-chart.sh).

    python helm/chart_checks.py manifests RENDERED.yaml [...]
        Cross-references inside each rendered release: selectors of Services, HPAs, PDBs,
        ServiceMonitors and NetworkPolicies find their pods; named ports, volumes, ConfigMaps and
        claims exist; every WARRIORCODER_* variable is a ServiceSettings field, and each
        service's variables load as ServiceSettings (its security checks too); the arena config
        passes warriorcoder's own validation and its roster points at rendered model servers;
        the PrometheusRule carries exactly the rules file; the helm test asks every service;
        each KEDA ScaledObject has the CRD's structure and watches its service's own consumer
        group and input topic.

    python helm/chart_checks.py dashboard-rules DASHBOARD.json OUT.yaml
        Writes every panel query of the Grafana dashboard as a recording rule, with Grafana's
        variables replaced, so that `promtool check rules OUT.yaml` parses each query.

    python helm/chart_checks.py metric-names FILE [...]
        Every warriorcoder_* series named in a dashboard or rules file is one the services
        export (warriorcoder/service/metrics.py).

    python helm/chart_checks.py values-doc [--write]
        Every value of values.yaml carries a `# --` comment, and helm/README.md holds the values
        table generated from those comments (--write regenerates it).

Exit status 1 and one line per problem when a check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from warriorcoder.config import ConfigError, parse_config
from warriorcoder.service.metrics import ServiceMetrics
from warriorcoder.service.settings import ServiceSettings

HELM_DIR = Path(__file__).parent
RULES_FILE = HELM_DIR / "warriorcoder/files/prometheus/warriorcoder-alerts.yaml"
VALUES_FILE = HELM_DIR / "warriorcoder/values.yaml"
README_FILE = HELM_DIR / "README.md"
TABLE_BEGIN, TABLE_END = "<!-- values-table: begin -->", "<!-- values-table: end -->"
SERVICES = ("challenger", "responder", "judge", "rater", "exporter")
# Grafana variables and what stands in for them when promtool parses a query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                     "$namespace": ".*", "$round": ".*", "$arena": ".*"}

Manifest = dict[str, Any]


def pod_specs(doc: Manifest) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """(pod labels, pod spec) of a Deployment or Pod manifest."""
    if doc["kind"] == "Deployment":
        template = doc["spec"]["template"]
        yield template["metadata"].get("labels", {}), template["spec"]
    elif doc["kind"] == "Pod":
        yield doc["metadata"].get("labels", {}), doc["spec"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and In/NotIn/Exists expressions) matches labels."""
    match_labels = selector.get("matchLabels", {})
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def container_ports(spec: dict[str, Any]) -> set[str | int]:
    ports: set[str | int] = set()
    for container in spec["containers"]:
        for port in container.get("ports", []):
            ports.update({port["containerPort"], port.get("name", "")})
    return ports


def check_release(docs: list[Manifest], source: str) -> list[str]:
    """Every cross-reference problem of one rendered release."""
    problems: list[str] = []

    def problem(doc: Manifest, text: str) -> None:
        problems.append(f"{source}: {doc['kind']}/{doc['metadata']['name']}: {text}")

    pods = [(doc, labels, spec) for doc in docs for labels, spec in pod_specs(doc)]
    by_kind: dict[str, dict[str, Manifest]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    services = by_kind.get("Service", {})
    config_maps = by_kind.get("ConfigMap", {})
    claims = by_kind.get("PersistentVolumeClaim", {})
    # Every resource of the release is named "<fullname>-...": the arena ConfigMap gives it.
    release_prefix = next((name.removesuffix("arena") for name in config_maps
                           if name.endswith("-arena")), "")

    for doc, labels, spec in pods:
        if doc["kind"] == "Deployment" and not selects(doc["spec"]["selector"], labels):
            problem(doc, "selector does not match its pod template labels")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problem(doc, f"volumeMount {mount['name']!r} has no volume")
            for env in container.get("env", []):
                name = env["name"]
                field = name.removeprefix("WARRIORCODER_").lower()
                if name.startswith("WARRIORCODER_") and field not in ServiceSettings.model_fields:
                    problem(doc, f"{name} is not a service setting "
                                 "(warriorcoder/service/settings.py)")
            if doc["kind"] == "Deployment" and labels.get("warriorcoder/role") == "service":
                error = service_settings_error(container.get("env", []))
                if error:
                    problem(doc, f"its environment is not valid service settings: {error}")
                component = labels["app.kubernetes.io/component"]
                if container.get("args") != ["serve", component]:
                    problem(doc, f"args {container.get('args')} should be ['serve', {component!r}]")
        for volume in volumes.values():
            if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
                problem(doc, f"ConfigMap {volume['configMap']['name']!r} is not rendered")
            # Claims named after the release are the chart's own; others are existingClaims.
            claim = volume.get("persistentVolumeClaim", {}).get("claimName", "")
            if claim.startswith(release_prefix) and claim not in claims:
                problem(doc, f"claim {claim!r} is not rendered")

    for svc in services.values():
        selector = {"matchLabels": svc["spec"]["selector"]}
        targets = [(d, s) for d, labels, s in pods
                   if d["kind"] == "Deployment" and selects(selector, labels)]
        if len(targets) != 1:
            problem(svc, f"selector matches {len(targets)} Deployments, expected 1")
            continue
        for port in svc["spec"]["ports"]:
            if port["targetPort"] not in container_ports(targets[0][1]):
                problem(svc, f"targetPort {port['targetPort']!r} is not a container port")

    for kind in ("HorizontalPodAutoscaler",):
        for hpa in by_kind.get(kind, {}).values():
            if hpa["spec"]["scaleTargetRef"]["name"] not in by_kind.get("Deployment", {}):
                problem(hpa, "scaleTargetRef names no rendered Deployment")
            if not hpa["spec"].get("metrics"):
                problem(hpa, "has no metrics")
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        if not any(selects(pdb["spec"]["selector"], labels) for _, labels, _ in pods):
            problem(pdb, "selector matches no pod")
    for monitor in by_kind.get("ServiceMonitor", {}).values():
        matched = [s for s in services.values()
                   if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        if len(matched) != 1:
            problem(monitor, f"selector matches {len(matched)} Services, expected 1")
            continue
        names = {p["name"] for p in matched[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint["port"] not in names:
                problem(monitor, f"endpoint port {endpoint['port']!r} is not a port of the Service")
    for policy in by_kind.get("NetworkPolicy", {}).values():
        selected = [(labels, spec) for _, labels, spec in pods
                    if selects(policy["spec"]["podSelector"], labels)]
        if not selected:
            problem(policy, "podSelector matches no pod")
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                if not all(port["port"] in container_ports(spec) for _, spec in selected):
                    problem(policy, f"ingress port {port['port']!r} is not a port of every "
                                    "selected pod")
    for rule in by_kind.get("PrometheusRule", {}).values():
        if rule["spec"] != yaml.safe_load(RULES_FILE.read_text()):
            problem(rule, f"spec differs from {RULES_FILE.name}")

    problems += check_arena(docs, services, source)
    problems += check_scaled_objects(docs, by_kind, source)
    problems += check_test_pod(docs, services, source)
    return problems


def check_arena(docs: list[Manifest], services: dict[str, Manifest], source: str) -> list[str]:
    """The arena config validates, and each chart-made endpoint is a rendered model server."""
    arena = [d for d in docs if d["kind"] == "ConfigMap" and "arena.yaml" in d.get("data", {})]
    if len(arena) != 1:
        return [f"{source}: expected one ConfigMap with arena.yaml, found {len(arena)}"]
    data = yaml.safe_load(arena[0]["data"]["arena.yaml"])
    try:
        config = parse_config(data, f"{source} arena.yaml")
    except ConfigError as error:
        return [f"{source}: {error}"]
    namespace = arena[0]["metadata"]["namespace"]
    problems = []
    for expert in config.roster:
        if not expert.endpoint or ".svc:" not in expert.endpoint:
            continue  # an expert outside the release (global.extraRoster)
        host, port = expert.endpoint.removeprefix("http://").split("/")[0].split(":")
        name, _, rest = host.partition(".")
        svc = services.get(name)
        if rest != f"{namespace}.svc" or svc is None:
            problems.append(
                f"{source}: expert {expert.id}: {expert.endpoint} is no rendered Service")
        elif int(port) not in {p["port"] for p in svc["spec"]["ports"]}:
            problems.append(f"{source}: expert {expert.id}: port {port} is not served by {name}")
    return problems


# ScaledObject (keda.sh/v1alpha1) fields KEDA knows, and those of a trigger. KEDA's CRD is not
# available offline, so these stand in for its schema (reference: keda.sh/docs, ScaledObject
# specification and the Apache Kafka scaler).
SCALED_OBJECT_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod",
                      "initialCooldownPeriod", "idleReplicaCount", "minReplicaCount",
                      "maxReplicaCount", "fallback", "advanced", "triggers"}
SCALED_OBJECT_INTS = ("pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                      "idleReplicaCount", "minReplicaCount", "maxReplicaCount")
TRIGGER_FIELDS = {"type", "name", "metadata", "authenticationRef", "metricType",
                  "useCachedMetrics"}
KAFKA_REQUIRED = ("bootstrapServers", "consumerGroup", "topic", "lagThreshold")
TRIGGER_AUTH_SPEC = {"secretTargetRef", "env", "configMapTargetRef", "podIdentity",
                     "hashiCorpVault", "azureKeyVault", "awsSecretManager", "gcpSecretManager",
                     "boundServiceAccountToken"}
# What the Kafka scaler takes from a TriggerAuthentication.
KAFKA_AUTH_PARAMETERS = {"sasl", "saslTokenProvider", "username", "password", "keytab", "realm",
                         "kerberosConfig", "kerberosServiceName", "oauthTokenEndpointUri",
                         "scopes", "oauthExtensions", "tls", "ca", "cert", "key", "keyPassword",
                         "awsRegion", "awsAccessKeyID", "awsSecretAccessKey", "awsRoleArn"}
# KEDA's name of each SASL mechanism the services support.
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256",
             "SCRAM-SHA-512": "scram_sha512"}
SERVICES_DIR = HELM_DIR.parent / "warriorcoder/services"


def consumed_topic(component: str) -> str | None:
    """The topic a service consumes, read from its own module (`ctx.stage_loop(Topic.X, ...)`),
    so that the chart's topic table is checked against the code, not against itself."""
    from warriorcoder.stages.bus import Topic

    found = re.search(r"stage_loop\(\s*Topic\.(\w+)",
                      (SERVICES_DIR / f"{component}.py").read_text())
    return Topic[found.group(1)].value if found else None


def deployment_settings(deployment: Manifest) -> ServiceSettings:
    """The ServiceSettings a Deployment's service container would load from its env (values
    from Secrets and files as `settings_values` stands them in)."""
    with tempfile.TemporaryDirectory() as scratch:
        return ServiceSettings.model_validate(settings_values(
            deployment["spec"]["template"]["spec"]["containers"][0].get("env", []),
            Path(scratch)))


def check_scaled_objects(docs: list[Manifest], by_kind: dict[str, dict[str, Manifest]],
                         source: str) -> list[str]:
    """Each KEDA ScaledObject is well formed (the CRD's structure), scales a rendered
    Deployment that no HPA of the chart also scales, and its Kafka trigger watches exactly the
    consumer group and input topic that the target's service uses, on its broker."""
    problems: list[str] = []
    deployments = by_kind.get("Deployment", {})
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"]
                   for h in by_kind.get("HorizontalPodAutoscaler", {}).values()}
    for obj in by_kind.get("ScaledObject", {}).values():
        found: list[str] = []
        if obj.get("apiVersion") != "keda.sh/v1alpha1":
            found.append(f"apiVersion {obj.get('apiVersion')!r} is not keda.sh/v1alpha1")
        spec = obj.get("spec", {})
        found += [f"spec.{key} is not a ScaledObject field"
                  for key in sorted(set(spec) - SCALED_OBJECT_SPEC)]
        found += [f"spec.{key} {spec[key]!r} is not a non-negative integer"
                  for key in SCALED_OBJECT_INTS
                  if key in spec and (not isinstance(spec[key], int) or spec[key] < 0)]
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        if isinstance(low, int) and isinstance(high, int) and low > high:
            found.append(f"minReplicaCount {low} is above maxReplicaCount {high}")
        hpa_config = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
        if set(hpa_config) - {"behavior", "name"}:
            found.append(f"advanced.horizontalPodAutoscalerConfig has {sorted(hpa_config)}")
        target = spec.get("scaleTargetRef", {})
        deployment = deployments.get(target.get("name", ""))
        if target.get("kind", "Deployment") != "Deployment" or deployment is None:
            found.append(f"scaleTargetRef {target} names no rendered Deployment")
        elif target["name"] in hpa_targets:
            found.append("an HPA of the chart scales the same Deployment (KEDA makes its own)")
        triggers = spec.get("triggers")
        if not isinstance(triggers, list) or not triggers:
            found.append("has no triggers")
        else:
            for trigger in triggers:
                found += kafka_trigger_problems(trigger, deployment)
                if deployment is not None:
                    found += kafka_security_problems(
                        trigger, deployment, by_kind.get("TriggerAuthentication", {}))
        problems += [f"{source}: ScaledObject/{obj['metadata']['name']}: {text}"
                     for text in found]
    for auth in by_kind.get("TriggerAuthentication", {}).values():
        problems += [f"{source}: TriggerAuthentication/{auth['metadata']['name']}: {text}"
                     for text in trigger_authentication_problems(auth)]
    return problems


def trigger_authentication_problems(auth: Manifest) -> list[str]:
    """The structure of a KEDA TriggerAuthentication, for the Kafka scaler."""
    found = []
    if auth.get("apiVersion") != "keda.sh/v1alpha1":
        found.append(f"apiVersion {auth.get('apiVersion')!r} is not keda.sh/v1alpha1")
    spec = auth.get("spec", {})
    found += [f"spec.{key} is not a TriggerAuthentication field"
              for key in sorted(set(spec) - TRIGGER_AUTH_SPEC)]
    for ref in spec.get("secretTargetRef", []):
        if set(ref) != {"parameter", "name", "key"} or not all(
                isinstance(v, str) and v for v in ref.values()):
            found.append(f"secretTargetRef {ref} needs a parameter, a Secret name and a key")
    for ref in spec.get("env", []):
        if not {"parameter", "name"} <= set(ref) <= {"parameter", "name", "containerName"}:
            found.append(f"env {ref} needs a parameter and a variable name")
    found += [f"parameter {ref.get('parameter')!r} is not one the Kafka scaler reads"
              for source in ("secretTargetRef", "env") for ref in spec.get(source, [])
              if ref.get("parameter") not in KAFKA_AUTH_PARAMETERS]
    return found


def kafka_security_problems(trigger: dict[str, Any], deployment: Manifest,
                            auths: dict[str, Manifest]) -> list[str]:
    """KEDA reaches the broker the way the target's service does: TLS when the service uses
    SSL, the service's SASL mechanism, and credentials from the very Secrets and variables the
    Deployment uses. A TriggerAuthentication outside the release is not checked (not seen)."""
    ref = trigger.get("authenticationRef")
    auth = None
    if ref is not None:
        if ref.get("kind", "TriggerAuthentication") != "TriggerAuthentication" or \
                ref.get("name") not in auths:
            return []
        auth = auths[ref["name"]]["spec"]
    settings = deployment_settings(deployment)
    protocol = settings.kafka_security_protocol
    params = {r["parameter"]: r for source in ("secretTargetRef", "env")
              for r in (auth or {}).get(source, [])}
    metadata = trigger.get("metadata", {})
    found = []
    tls = metadata.get("tls", "disable")
    want_tls = "enable" if protocol.endswith("SSL") else "disable"
    if tls != want_tls and "tls" not in params:
        found.append(f"tls {tls!r}, but the service connects with {protocol}")
    sasl = metadata.get("sasl", "none")
    want_sasl = KEDA_SASL.get(settings.kafka_sasl_mechanism or "", "none") \
        if protocol.startswith("SASL_") else "none"
    if sasl != want_sasl and "sasl" not in params:
        found.append(f"sasl {sasl!r}, but the service uses {want_sasl!r} ({protocol})")
    if want_sasl != "none" and not {"username", "password"} <= set(params):
        found.append("SASL without a username and password from a TriggerAuthentication")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container.get("env", [])}
    used_secrets = {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
                    for e in env.values() if "secretKeyRef" in e.get("valueFrom", {})}
    volumes = deployment["spec"]["template"]["spec"].get("volumes", [])
    for v in volumes:
        if "secret" in v:
            items = v["secret"].get("items")
            keys = [i["key"] for i in items] if items else ["*"]
            used_secrets |= {(v["secret"]["secretName"], k) for k in keys}
    for r in (auth or {}).get("secretTargetRef", []):
        if (r["name"], r["key"]) not in used_secrets and (r["name"], "*") not in used_secrets:
            found.append(f"{r['parameter']} from Secret {r['name']}/{r['key']}, which the "
                         "service does not use")
    for r in (auth or {}).get("env", []):
        if r["name"] not in env:
            found.append(f"{r['parameter']} from ${r['name']}, which the service's container "
                         "does not set")
    return found


def kafka_trigger_problems(trigger: dict[str, Any], deployment: Manifest | None) -> list[str]:
    """What is wrong with one trigger of a ScaledObject that scales `deployment`."""
    found = [f"trigger field {key!r} is not a ScaledObject trigger field"
             for key in sorted(set(trigger) - TRIGGER_FIELDS)]
    if trigger.get("type") != "kafka":
        return [*found, f"trigger type {trigger.get('type')!r}: the chart scales on Kafka lag"]
    metadata = trigger.get("metadata", {})
    found += [f"trigger metadata {key}={value!r} is not a string (the CRD wants strings)"
              for key, value in metadata.items() if not isinstance(value, str)]
    found += [f"trigger metadata has no {key}" for key in KAFKA_REQUIRED
              if not metadata.get(key)]
    lag = str(metadata.get("lagThreshold", ""))
    if not lag.isdigit() or int(lag) < 1:
        found.append(f"lagThreshold {lag!r} is not a positive integer")
    ref = trigger.get("authenticationRef")
    if ref is not None and (not ref.get("name") or ref.get("kind", "TriggerAuthentication")
                            not in {"TriggerAuthentication", "ClusterTriggerAuthentication"}):
        found.append(f"authenticationRef {ref} needs a name and a TriggerAuthentication kind")
    if deployment is None:
        return found
    component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
    settings = deployment_settings(deployment)
    topic = consumed_topic(component)
    expected = {
        "bootstrapServers": settings.kafka_bootstrap_servers,
        "consumerGroup": settings.group(component),  # type: ignore[arg-type]
        "topic": settings.topic(topic) if topic else None,
    }
    found += [f"trigger {key} {metadata.get(key)!r}, but the {component} service uses {want!r}"
              for key, want in expected.items() if metadata.get(key) != want]
    return found


def settings_values(env: list[dict[str, Any]], scratch: Path) -> dict[str, Any]:
    """A service container's WARRIORCODER_* variables as ServiceSettings fields. A value from a
    Secret stands in as a placeholder and a *_FILE path as an empty file in `scratch`, since
    neither exists offline; every other value is the rendered one. Variables that are not
    settings are left out (reported on their own)."""
    values: dict[str, Any] = {}
    for var in env:
        field = var["name"].removeprefix("WARRIORCODER_").lower()
        if not var["name"].startswith("WARRIORCODER_") or (
                field not in ServiceSettings.model_fields):
            continue
        value = var.get("value", f"from-secret-{field}")
        if field.endswith("_file"):
            path = scratch / field
            path.touch()
            value = str(path)
        values[field] = value
    return values


def service_settings_error(env: list[dict[str, Any]]) -> str | None:
    """Why a service container's variables fail ServiceSettings (its own checks), or None."""
    with tempfile.TemporaryDirectory() as scratch:
        try:
            ServiceSettings.model_validate(settings_values(env, Path(scratch)))
        except ValidationError as err:
            return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in err.errors())
    return None


def check_test_pod(docs: list[Manifest], services: dict[str, Manifest], source: str) -> list[str]:
    """The helm test asks each enabled service, at its Service, for its own API."""
    tests = [d for d in docs if d["kind"] == "Pod"
             and d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    deployed = {
        d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs
        if d["kind"] == "Deployment"
        and d["spec"]["template"]["metadata"]["labels"].get("warriorcoder/role") == "service"
    }
    if len(tests) != 1:
        return [f"{source}: expected one helm test pod, found {len(tests)}"]
    asked = {}
    for arg in tests[0]["spec"]["containers"][0]["args"]:
        address, api = arg.split("=")
        asked[api.rsplit(".", 1)[1].lower()] = address.split(":")[0]
    problems = []
    if set(asked) != deployed:
        problems.append(f"{source}: helm test asks {sorted(asked)}, deployed {sorted(deployed)}")
    problems += [f"{source}: helm test asks {name} at {svc!r}, which is not a Service"
                 for name, svc in asked.items() if svc not in services]
    return problems


def manifests(paths: list[Path]) -> int:
    problems = []
    for path in paths:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        found = check_release(docs, path.name)
        print(f"  {path.name}: {len(docs)} manifests, {len(found)} problems")
        problems += found
    for line in problems:
        print(f"  PROBLEM {line}")
    return 1 if problems else 0


def dashboard_rules(dashboard: Path, out: Path) -> int:
    """Write each panel query as a recording rule; fail on a query without a metric we export."""
    board = json.loads(dashboard.read_text())
    rules = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, stand_in in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, stand_in)
            if "$" in expr:
                print(f"  PROBLEM panel {panel['title']!r}: unknown variable in {expr}")
                return 1
            if not METRIC_NAME.search(expr):
                print(f"  PROBLEM panel {panel['title']!r}: no warriorcoder_ series in {expr}")
                return 1
            rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}".lower(),
                          "expr": expr})
    out.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    print(f"  {len(rules)} queries of {len(board['panels'])} panels written to {out}")
    return 0


METRIC_NAME = re.compile(r"\bwarriorcoder_[a-z_]+\b")


def exported_series() -> set[str]:
    """Names of the series a service exposes: every metric with its sample suffixes."""
    names = set()
    for family in ServiceMetrics("check").registry.collect():
        for sample in family.samples:
            names.add(sample.name)
        # Samples of labelled metrics appear only once a label set is used.
        suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                    "histogram": ("_bucket", "_count", "_sum", "_created")}
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def metric_names(paths: list[Path]) -> int:
    exported = exported_series()
    problems = 0
    for path in paths:
        used = set(METRIC_NAME.findall(path.read_text()))
        unknown = sorted(used - exported)
        print(f"  {path.name}: {len(used)} series, all exported" if not unknown
              else f"  PROBLEM {path.name}: not exported by the services: {', '.join(unknown)}")
        problems += bool(unknown)
    return 1 if problems else 0


KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*):(?P<rest>.*)$")


def documented_values(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(path, description) of every `# --` comment of a values file, in file order, and the
    paths of values that have neither a comment nor a commented parent."""
    lines = text.splitlines()
    documented: list[tuple[str, str]] = []
    undocumented: list[str] = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, covered by a comment)
    pending: list[str] | None = None
    list_owner_indent: int | None = None
    for number, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if list_owner_indent is not None:
            if not stripped or indent > list_owner_indent or (
                    indent == list_owner_indent and stripped.startswith("- ")):
                continue  # inside a list value
            list_owner_indent = None
        if not stripped:
            pending = None
            continue
        if stripped.startswith("# --"):
            pending = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped.lstrip("#").strip())
            continue
        match = KEY_LINE.match(line)
        if match is None:
            pending = None
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k, _ in stack] + [match["key"]])
        covered = any(c for _, _, c in stack)
        if pending is not None:
            documented.append((path, " ".join(pending)))
        following = next((ln.strip() for ln in lines[number + 1:]
                          if ln.strip() and not ln.strip().startswith("#")), "")
        is_list = not match["rest"].strip() and following.startswith("- ")
        is_leaf = bool(match["rest"].strip()) or is_list
        if is_leaf and pending is None and not covered:
            undocumented.append(path)
        if is_list:
            list_owner_indent = indent
        elif not is_leaf:
            stack.append((indent, match["key"], covered or pending is not None))
        pending = None
    return documented, undocumented


def values_table() -> str:
    """The markdown table of helm/README.md: every commented value, its default, its comment."""
    values = yaml.safe_load(VALUES_FILE.read_text())
    rows = ["| value | default | description |", "|---|---|---|"]
    for path, description in documented_values(VALUES_FILE.read_text())[0]:
        node: Any = values
        for part in path.split("."):
            node = node[part]
        default = json.dumps(node, ensure_ascii=False)
        if len(default) > 60:
            default = "see values.yaml"
        cell = f"`{default}`".replace("|", "\\|")
        text = description.replace("|", "\\|")
        rows.append(f"| `{path}` | {cell} | {text} |")
    return "\n".join(rows)


def values_doc(write: bool) -> int:
    documented, undocumented = documented_values(VALUES_FILE.read_text())
    for path in undocumented:
        print(f"  PROBLEM {VALUES_FILE.name}: {path} has no '# --' comment")
    readme = README_FILE.read_text()
    if TABLE_BEGIN not in readme or TABLE_END not in readme:
        print(f"  PROBLEM {README_FILE}: no {TABLE_BEGIN} ... {TABLE_END} section")
        return 1
    head, rest = readme.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    fresh = f"{head}{TABLE_BEGIN}\n{values_table()}\n{TABLE_END}{tail}"
    if write:
        README_FILE.write_text(fresh)
    elif fresh != readme:
        print(f"  PROBLEM {README_FILE}: the values table is stale "
              "(python helm/chart_checks.py values-doc --write)")
        return 1
    print(f"  {len(documented)} values documented, table in {README_FILE.name} up to date")
    return 1 if undocumented else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("manifests", help="cross-check rendered releases")
    check.add_argument("files", nargs="+", type=Path)
    rules = sub.add_parser("dashboard-rules", help="dashboard queries as recording rules")
    rules.add_argument("dashboard", type=Path)
    rules.add_argument("out", type=Path)
    names = sub.add_parser("metric-names", help="series of dashboards and rules are exported")
    names.add_argument("files", nargs="+", type=Path)
    doc = sub.add_parser("values-doc", help="values.yaml comments and the README table agree")
    doc.add_argument("--write", action="store_true", help="regenerate the README table")
    args = parser.parse_args(argv)
    if args.command == "values-doc":
        return values_doc(args.write)
    if args.command == "manifests":
        return manifests(args.files)
    if args.command == "metric-names":
        return metric_names(args.files)
    return dashboard_rules(args.dashboard, args.out)


if __name__ == "__main__":
    sys.exit(main())
