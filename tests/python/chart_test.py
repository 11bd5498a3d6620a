"""Checks the Helm chart in charts/otlp-lb without a cluster or a helm CLI.

Lints the chart with the Helm v4 SDK (helm-python-sdk), renders it with the
default values and with every file under charts/otlp-lb/ci/, validates every
rendered object against the Kubernetes 1.30 OpenAPI schemas in strict mode
(kubernetes-validate), asserts what users rely on (RBAC only for k8s
resolvers, a config checksum that rolls the pods, node-local traffic in
daemonset mode, the security context, ports, probes and drain timing, the
schema refusing typos), and runs `otlp-lb validate` on every rendered config.

    python chart_test.py --binary target/debug/otlp-lb --out DIR

writes the rendered alerts (a Prometheus rules file, for `promtool check
rules`) and dashboard to DIR, and prints one JSON summary line. Exits non-zero with the failures listed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate.utils as kv
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "otlp-lb"
KUBE_VERSION = "1.30"
RELEASE = "obs"
NAMESPACE = "observability"
# Custom resources of the Prometheus Operator have no schema in
# kubernetes-validate; their shape is asserted below instead.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
# The component type names the binary accepts today; the templates spell them
# only in the "otlp-lb.components" helper.
COMPONENT_NAMES = ["load_balancing", "otlp_grpc", "otlp_http", "tail_sampling", "cumulative_to_delta", "health_check"]
# The config type of each `agents.exporter.type` value.
EXPORTER_TYPES = {"otlp": "otlp_grpc", "otlphttp": "otlp_http", "debug": "debug"}

failures: list[str] = []


def check(cond: bool, what: str) -> None:
    if not cond:
        failures.append(what)


class Rendered:
    """The objects of one render, by (kind, name)."""

    def __init__(self, manifests: dict[str, str]):
        self.notes = manifests.get("otlp-lb/templates/NOTES.txt", "")
        self.objects: list[dict] = []
        for path, text in sorted(manifests.items()):
            if path.endswith("NOTES.txt"):
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    doc["__source"] = path
                    self.objects.append(doc)

    def of(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict | None:
        return next((o for o in self.of(kind) if o["metadata"]["name"] == name), None)

    def workloads(self) -> list[dict]:
        return [o for o in self.objects if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]

    def config(self, name: str) -> dict:
        cm = self.get("ConfigMap", name)
        assert cm is not None, f"ConfigMap {name}"
        return yaml.safe_load(cm["data"]["config.yaml"])


def render(values: dict | None = None) -> Rendered:
    with helm.Chart.load(str(CHART)) as chart:
        return Rendered(chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True))


def render_fails(values: dict) -> str:
    """The error of a render that must fail; records a failure if it renders."""
    try:
        with helm.Chart.load(str(CHART)) as chart:
            chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as e:
        return str(e)
    failures.append(f"rendering {json.dumps(values)} should fail")
    return ""


def ci_values() -> dict[str, dict]:
    out = {}
    for f in sorted((CHART / "ci").glob("*.yaml")):
        out[f.name] = yaml.safe_load(f.read_text()) or {}
    return out


def full(name: str = "") -> str:
    return f"{RELEASE}-otlp-lb{name}"


# --- checks on one render ---------------------------------------------------------


def check_validator_is_strict(r: Rendered) -> None:
    """A field Kubernetes does not know must fail, or the validation proves nothing."""
    deployment = {k: v for k, v in r.of("Deployment")[0].items() if k != "__source"}
    bad = json.loads(json.dumps(deployment))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    try:
        kv.validate(bad, KUBE_VERSION, strict=True)
        failures.append("kubernetes-validate accepted an unknown field")
    except kv.ValidationError:
        pass


def validate_objects(label: str, r: Rendered) -> None:
    for o in r.objects:
        obj = {k: v for k, v in o.items() if k != "__source"}
        where = f"{label}: {o['kind']}/{o['metadata']['name']}"
        if (o["apiVersion"], o["kind"]) in CRD_KINDS:
            check("spec" in o, f"{where}: no spec")
            continue
        try:
            kv.validate(obj, KUBE_VERSION, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            failures.append(f"{where}: invalid for Kubernetes {KUBE_VERSION}: {path}: {e.message}")
        except kv.SchemaNotFoundError as e:
            failures.append(f"{where}: {e.message}")


def check_security(label: str, r: Rendered) -> None:
    for w in r.workloads():
        spec = w["spec"]["template"]["spec"]
        where = f"{label}: {w['kind']}/{w['metadata']['name']}"
        pod = spec.get("securityContext", {})
        check(pod.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot")
        check(pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: pod seccomp")
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            check(sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
            check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
            check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation")
            check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities drop ALL")
            check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccomp")
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            check(ports.get("health") == 13133 and ports.get("metrics") == 8888, f"{where}: ports {ports}")
            for probe in ("readinessProbe", "livenessProbe"):
                get = c.get(probe, {}).get("httpGet", {})
                check(get.get("port") == "health" and get.get("path") == "/", f"{where}: {probe} on health_check")
            live = c["livenessProbe"]
            sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
            grace = spec.get("terminationGracePeriodSeconds")
            check(isinstance(sleep, int) and sleep > 0, f"{where}: preStop sleep")
            # The proxy drains for up to 30 s after SIGTERM, which comes after the preStop sleep.
            check(isinstance(grace, int) and grace >= (sleep or 0) + 30, f"{where}: grace {grace} < preStop + 30")
            # A draining pod answers 503; liveness must not kill it before the drain ends.
            check(live["periodSeconds"] * live["failureThreshold"] > 30, f"{where}: liveness outlasts the drain")
            mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
            check(mounts.get("config") == "/etc/otlp-lb", f"{where}: config mount")
            check(c["args"] == ["--config", "/etc/otlp-lb/config.yaml"], f"{where}: args")
        check("checksum/config" in w["spec"]["template"]["metadata"].get("annotations", {}), f"{where}: checksum")


def k8s_namespaces(config: dict) -> set[str]:
    out = set()
    for exporter in (config.get("exporters") or {}).values():
        k8s = ((exporter or {}).get("resolver") or {}).get("k8s")
        if k8s:
            parts = k8s["service"].split(".")
            out.add(parts[1] if len(parts) > 1 else NAMESPACE)
    return out


def check_rbac(label: str, r: Rendered) -> None:
    """A Role and RoleBinding exactly in the namespaces a k8s resolver watches."""
    expected = k8s_namespaces(r.config(full()))
    roles = {o["metadata"]["namespace"]: o for o in r.of("Role")}
    bindings = {o["metadata"]["namespace"]: o for o in r.of("RoleBinding")}
    check(set(roles) == expected, f"{label}: Roles in {sorted(roles)}, k8s resolvers watch {sorted(expected)}")
    check(set(bindings) == expected, f"{label}: RoleBindings in {sorted(bindings)}")
    check(not r.of("ClusterRole") and not r.of("ClusterRoleBinding"), f"{label}: no cluster-wide RBAC")
    sa = r.of("ServiceAccount")[0]["metadata"]["name"]
    for ns, role in roles.items():
        check(
            role["rules"] == [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}],
            f"{label}: Role in {ns} grants exactly get/list/watch on endpointslices",
        )
        b = bindings.get(ns, {})
        check(b.get("roleRef", {}).get("name") == role["metadata"]["name"], f"{label}: RoleBinding in {ns} refers to its Role")
        check(b.get("subjects") == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}], f"{label}: RoleBinding subject")
    proxy = next(w for w in r.workloads() if w["metadata"]["name"] == full())
    check(proxy["spec"]["template"]["spec"]["serviceAccountName"] == sa, f"{label}: proxy runs as {sa}")


def check_services(label: str, r: Rendered, values: dict) -> None:
    svc = r.get("Service", full())
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]}
    check(ports == {"grpc": (4317, "grpc"), "http": (4318, "http"), "metrics": (8888, "metrics")}, f"{label}: Service ports {ports}")
    daemonset = values.get("mode") == "daemonset"
    check((svc["spec"].get("internalTrafficPolicy") == "Local") == daemonset, f"{label}: internalTrafficPolicy Local iff daemonset")
    check(len(r.of("DaemonSet")) == int(daemonset) and len(r.of("Deployment")) == int(not daemonset), f"{label}: workload kind")
    proxy = (r.of("DaemonSet") + r.of("Deployment"))[0]
    check(svc["spec"]["selector"] == proxy["spec"]["selector"]["matchLabels"], f"{label}: Service selects the proxies")
    if daemonset:
        check(not r.of("HorizontalPodAutoscaler"), f"{label}: no HPA for a DaemonSet")
        check(full() not in [p["metadata"]["name"] for p in r.of("PodDisruptionBudget")], f"{label}: no proxy PDB for a DaemonSet")
    else:
        tsc = proxy["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
        check(bool(tsc) and all(c["labelSelector"]["matchLabels"] == proxy["spec"]["selector"]["matchLabels"] for c in tsc),
              f"{label}: topology spread over the proxies")
        check(r.get("PodDisruptionBudget", full()) is not None, f"{label}: proxy PDB")
        hpa = values.get("autoscaling", {}).get("enabled", False)
        check(bool(r.of("HorizontalPodAutoscaler")) == hpa, f"{label}: HPA iff autoscaling")
        check(("replicas" in proxy["spec"]) != hpa, f"{label}: replicas set iff no HPA")
        for h in r.of("HorizontalPodAutoscaler"):
            check(h["spec"]["metrics"][0]["resource"]["name"] == "cpu", f"{label}: HPA on CPU")


def check_agents(label: str, r: Rendered, values: dict) -> None:
    """Each pool without a resolver goes to this release's agents for its signal."""
    proxy = r.config(full())
    sets = r.of("StatefulSet")
    agents = values.get("agents", {})
    if values.get("config"):
        return
    for signal in ("traces", "metrics", "logs"):
        pool = values.get("pools", {}).get(signal, {})
        exporter = proxy["exporters"].get(f"load_balancing/{signal}")
        if pool.get("enabled", True) is False:
            check(exporter is None and signal not in proxy["service"]["pipelines"], f"{label}: {signal} pool disabled")
            continue
        if pool.get("resolver"):
            check(exporter["resolver"] == pool["resolver"], f"{label}: {signal} resolver as given")
            continue
        k8s = exporter["resolver"]["k8s"]
        svc_name = k8s["service"].split(".")[0]
        check(k8s["service"] == f"{svc_name}.{NAMESPACE}" and k8s["return_hostnames"] is True, f"{label}: {signal} k8s resolver {k8s}")
        svc = r.get("Service", svc_name)
        sts = r.get("StatefulSet", svc_name)
        check(svc is not None and svc["spec"].get("clusterIP") == "None", f"{label}: headless Service {svc_name}")
        check(sts is not None and sts["spec"]["serviceName"] == svc_name, f"{label}: StatefulSet {svc_name} governed by its headless Service")
        if sts is None:
            continue
        check(svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"], f"{label}: {svc_name} selects its agents")
        cfg = r.config(svc_name)
        check(signal in cfg["service"]["pipelines"], f"{label}: {svc_name} has a {signal} pipeline")
        if agents.get("perSignal"):
            check(svc_name == full(f"-agents-{signal}"), f"{label}: per-signal agents for {signal}")
            check(sts["spec"]["replicas"] == agents.get(signal, {}).get("replicas", {"traces": 3, "metrics": 2, "logs": 2}[signal]),
                  f"{label}: {signal} agents sized separately")
            check(list(cfg["service"]["pipelines"]) == [signal], f"{label}: {svc_name} serves {signal} only")
    for sts in sets:
        cfg = r.config(sts["metadata"]["name"])
        pipes = cfg["service"]["pipelines"]
        if "traces" in pipes and agents.get("tailSampling", {}).get("enabled", True):
            check(pipes["traces"].get("processors") == ["tail_sampling"], f"{label}: tail_sampling on traces")
        if "metrics" in pipes and agents.get("cumulativeToDelta", {}).get("enabled", True):
            check(pipes["metrics"].get("processors") == ["cumulative_to_delta"], f"{label}: cumulative_to_delta on metrics")
        exporter = EXPORTER_TYPES[agents.get("exporter", {}).get("type", "debug")]
        check(list(cfg["exporters"]) == [exporter], f"{label}: agents export with {exporter}")
        spec = sts["spec"]["template"]["spec"]
        check(spec.get("automountServiceAccountToken") is False, f"{label}: agents mount no API token")


def check_tls(label: str, r: Rendered, values: dict) -> None:
    """TLS files from a Secret: mounted where the rendered config says they are."""
    blocks = [("backends", values.get("backends", {}).get("tls", {}), [full()])]
    agent_tls = values.get("agents", {}).get("exporter", {}).get("tls", {})
    blocks.append(("agents.exporter", agent_tls, [s["metadata"]["name"] for s in r.of("StatefulSet")]))
    for what, tls, workloads in blocks:
        for name in workloads:
            w = next(w for w in r.workloads() if w["metadata"]["name"] == name)
            spec = w["spec"]["template"]["spec"]
            cfg = r.config(name)
            tls_blocks = [
                (e.get("protocol", {}).get("otlp", {}) if t.startswith("load_balancing") else e).get("tls")
                for t, e in cfg["exporters"].items()
                if t.split("/")[0] in ("load_balancing", "otlp_grpc")
            ]
            if not tls.get("enabled"):
                check(all(b == {"insecure": True} for b in tls_blocks), f"{label}: {name}: plaintext without {what}.tls")
                check(not any(v["name"] == "tls" for v in spec["volumes"]), f"{label}: {name}: no TLS volume")
                continue
            mount = tls.get("mountPath", "/etc/otlp-lb/tls")
            volume = next((v for v in spec["volumes"] if v["name"] == "tls"), None)
            check(volume is not None and volume["secret"]["secretName"] == tls["secretName"], f"{label}: {name}: TLS Secret volume")
            mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
            check(mounts.get("tls") == mount, f"{label}: {name}: TLS mounted at {mount}")
            want = {
                "insecure": False,
                "ca_file": f"{mount}/{tls.get('caKey', 'ca.crt')}",
                "cert_file": f"{mount}/{tls.get('certKey', 'tls.crt')}",
                "key_file": f"{mount}/{tls.get('keyKey', 'tls.key')}",
            }
            if tls.get("serverNameOverride"):
                want["server_name_override"] = tls["serverNameOverride"]
            check(tls_blocks and all(b == want for b in tls_blocks), f"{label}: {name}: tls {tls_blocks} != {want}")


def check_observability(label: str, r: Rendered, values: dict) -> None:
    monitor = values.get("serviceMonitor", {}).get("enabled", False)
    check(len(r.of("ServiceMonitor")) == int(monitor), f"{label}: ServiceMonitor iff enabled")
    for w in r.workloads():
        ann = w["spec"]["template"]["metadata"].get("annotations", {})
        scrape = {k: ann.get(k) for k in ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")}
        if monitor:
            check(scrape == dict.fromkeys(scrape), f"{label}: no scrape annotations with a ServiceMonitor")
        else:
            check(scrape == {"prometheus.io/scrape": "true", "prometheus.io/port": "8888", "prometheus.io/path": "/metrics"},
                  f"{label}: {w['metadata']['name']} scrape annotations {scrape}")
    for sm in r.of("ServiceMonitor"):
        check(sm["spec"]["endpoints"][0]["port"] == "metrics", f"{label}: ServiceMonitor scrapes the metrics port")
        sel = sm["spec"]["selector"]["matchLabels"]
        for svc in r.of("Service"):
            check(all(svc["metadata"]["labels"].get(k) == v for k, v in sel.items()), f"{label}: ServiceMonitor selects {svc['metadata']['name']}")
    rule = values.get("prometheusRule", {}).get("enabled", False)
    check(len(r.of("PrometheusRule")) == int(rule), f"{label}: PrometheusRule iff enabled")
    dashboards = [o for o in r.of("ConfigMap") if o["metadata"]["labels"].get("grafana_dashboard") == "1"]
    check(len(dashboards) == 1, f"{label}: one dashboard ConfigMap")
    for d in dashboards:
        dash = json.loads(d["data"]["otlp-lb.json"])
        check(len(dash["panels"]) > 10, f"{label}: dashboard panels")


def run_validate(binary: str, label: str, r: Rendered, workdir: Path) -> int:
    """`otlp-lb validate` on every rendered config; returns how many ran."""
    n = 0
    for cm in r.of("ConfigMap"):
        if "config.yaml" not in cm.get("data", {}):
            continue
        path = workdir / f"{label}-{cm['metadata']['name']}.yaml"
        path.write_text(cm["data"]["config.yaml"])
        out = subprocess.run([binary, "validate", "--config", str(path)], capture_output=True, text=True, timeout=60)
        check(out.returncode == 0, f"{label}: otlp-lb validate {cm['metadata']['name']}: {out.stdout}{out.stderr}")
        n += 1
    return n


# --- checks across renders --------------------------------------------------------


def check_checksums() -> None:
    def sums(values: dict) -> dict[str, str]:
        r = render(values)
        return {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["annotations"]["checksum/config"] for w in r.workloads()}

    base = sums({})
    routed = sums({"pools": {"traces": {"routing_key": "service"}}})
    sampled = sums({"agents": {"tailSampling": {"settings": {"decision_wait": "5s", "policies": [{"name": "all", "type": "always_sample"}]}}}})
    scaled = sums({"replicaCount": 5, "agents": {"replicas": 4}})
    check(routed[full()] != base[full()], "checksum: a pool change rolls the proxies")
    check(routed[full("-agents")] == base[full("-agents")], "checksum: a pool change leaves the agents alone")
    check(sampled[full("-agents")] != base[full("-agents")], "checksum: a tail sampling change rolls the agents")
    check(sampled[full()] == base[full()], "checksum: a tail sampling change leaves the proxies alone")
    check(scaled == base, "checksum: replica counts do not change the config checksum")


def check_schema_is_draft7() -> None:
    """Draft-07, which Helm 3 (gojsonschema) and Helm 4 both read."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    check(schema.get("$schema") == "http://json-schema.org/draft-07/schema#", "values.schema.json declares draft-07")
    jsonschema.Draft7Validator.check_schema(schema)
    with helm.Chart.load(str(CHART)) as chart:
        defaults = chart.values
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(defaults))
    check(not errors, f"values.yaml against its schema: {[e.message for e in errors]}")


def check_failures() -> None:
    typo = render_fails({"pools": {"traces": {"routing_kye": "traceID"}}})
    check("routing_kye" in typo, f"schema: a typo in a key is named: {typo!r}")
    wrong_type = render_fails({"replicaCount": "two"})
    check("replicaCount" in wrong_type, f"schema: a wrong type is named: {wrong_type!r}")
    top_typo = render_fails({"agent": {"enabled": False}})
    check("agent" in top_typo, f"schema: an unknown top-level key is named: {top_typo!r}")
    bad_key = render_fails({"pools": {"metrics": {"routing_key": "traceID"}}})
    check("routing_key" in bad_key, f"schema: a routing key the signal does not have: {bad_key!r}")
    two = render_fails({"pools": {"traces": {"resolver": {"static": {"hostnames": ["a"]}, "dns": {"hostname": "b"}}}}})
    check("resolver" in two, f"schema: two resolvers: {two!r}")
    no_pool = render_fails({"agents": {"enabled": False}})
    check("pools.traces.resolver" in no_pool, f"no agents and no resolver: {no_pool!r}")
    grace = render_fails({"terminationGracePeriodSeconds": 20})
    check("terminationGracePeriodSeconds" in grace, f"grace below the drain: {grace!r}")
    endpoint = render_fails({"agents": {"exporter": {"type": "otlp"}}})
    check("agents.exporter.otlp.endpoint" in endpoint, f"otlp exporter without endpoint: {endpoint!r}")
    tls_agents = render_fails({"backends": {"tls": {"enabled": True}}})
    check("plaintext" in tls_agents, f"TLS to the chart's plaintext agents: {tls_agents!r}")


def check_component_names_in_one_place() -> None:
    for f in sorted((CHART / "templates").iterdir()):
        # NOTES.txt names values (`agents.exporter.type: otlphttp`), not config keys.
        if f.name in ("_helpers.tpl", "NOTES.txt"):
            continue
        text = f.read_text()
        for name in COMPONENT_NAMES:
            check(not re.search(rf"\b{name}\b", text), f"{f.name} spells the component name {name}; use the otlp-lb.components helper")


def merge(into: dict, new: dict) -> dict:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v
    return into


def readme_installs() -> dict[str, dict]:
    """The values of every `helm install` example in the two READMEs."""
    out = {}
    for doc in (ROOT / "README.md", CHART / "README.md"):
        text = doc.read_text().replace("\\\n", " ")
        for n, line in enumerate(l for l in text.splitlines() if l.strip().startswith("helm install ")):
            words = shlex.split(line, comments=True)
            values: dict = {}
            for flag, arg in zip(words, words[1:]):
                if flag == "--set":
                    merge(values, helm.parse_set_string(arg))
                elif flag in ("-f", "--values"):
                    merge(values, yaml.safe_load((ROOT / arg).read_text()) or {})
            out[f"{doc.relative_to(ROOT)} example {n + 1}"] = values
    check(len(out) >= 6, f"helm install examples found: {list(out)}")
    return out


def check_readme_current() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "chart-readme"), "--check"], capture_output=True, text=True)
    check(out.returncode == 0, f"chart README values table: {out.stdout}{out.stderr}")


def lint(label: str, values: dict) -> None:
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}.0")
    for m in report["messages"]:
        # 1 is informational (the chart has no icon); warnings and errors fail.
        check(m["severity"] < 2, f"lint {label}: {m['path']}: {m['error']}")
    check(not report["errors"], f"lint {label}: {report['errors']}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True, help="the otlp-lb binary to run `validate` with")
    ap.add_argument("--out", help="directory for the rendered PrometheusRule and dashboard")
    args = ap.parse_args()
    started = time.monotonic()
    renders = validated = objects = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = {"defaults": {}, **ci_values(), **readme_installs()}
        for label, values in cases.items():
            try:
                lint(label, values)
                r = render(values)
                renders += 1
                objects += len(r.objects)
                validate_objects(label, r)
                if label == "defaults":
                    check_validator_is_strict(r)
                check_security(label, r)
                check_rbac(label, r)
                check_services(label, r, values)
                check_agents(label, r, values)
                check_tls(label, r, values)
                check_observability(label, r, values)
                validated += run_validate(args.binary, re.sub(r"[^A-Za-z0-9-]+", "-", label), r, work)
            except Exception:
                failures.append(f"{label}: {traceback.format_exc()}")
        for step in (check_schema_is_draft7, check_checksums, check_failures, check_component_names_in_one_place, check_readme_current):
            try:
                step()
            except Exception:
                failures.append(f"{step.__name__}: {traceback.format_exc()}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        r = render({"prometheusRule": {"enabled": True}})
        rules = r.of("PrometheusRule")
        check(len(rules) == 1, "PrometheusRule renders")
        exprs = [rule["expr"] for rule in rules[0]["spec"]["groups"][0]["rules"]] if rules else []
        (out / "alerts.txt").write_text("\n".join(exprs) + "\n")
        if rules:
            (out / "rules.yaml").write_text(yaml.safe_dump({"groups": rules[0]["spec"]["groups"]}, sort_keys=False))
        dash = next(o for o in r.of("ConfigMap") if o["metadata"]["name"].endswith("-dashboard"))
        (out / "dashboard.json").write_text(dash["data"]["otlp-lb.json"])
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    print(json.dumps({
        "renders": renders, "objects": objects, "configs_validated": validated,
        "failures": len(failures), "seconds": round(time.monotonic() - started, 1),
    }))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
