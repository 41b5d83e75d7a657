#!/usr/bin/env python3
"""Generates the deployment artefacts that are derived from others, so they never drift apart.

- deploy/grafana/dashboards/auth-api-*.json: the two Grafana dashboards (defined below as code),
  provisioned from that folder by docker compose;
- deploy/k8s/base/grafana-dashboards.yaml: the same dashboards as ConfigMaps with the label the
  Grafana sidecar watches (kustomize cannot load files from outside its directory);
- deploy/k8s/base/prometheusrule.yaml: deploy/prometheus/rules/auth-api.yml wrapped in a
  Prometheus Operator PrometheusRule.

`.ci/run` runs this script and fails when the committed files differ from its output.
Usage: python3 deploy/generate.py [--check]
"""

import json
import sys
import urllib.parse
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
SELECTOR = 'job="auth-api", namespace=~"$namespace", instance=~"$instance"'
API = SELECTOR + ', endpoint!~"/health/.*"'
RATE = "$__rate_interval"


def tempo_link(title: str, route_label: str) -> dict:
    """A data link from a latency series to the slow traces of that route in Tempo."""
    traceql = (
        '{ resource.service.name="auth-api" && span.http.route="${__field.labels.%s}" && duration > 250ms }' % route_label
    )
    pane = {
        "datasource": "tempo",
        "queries": [{"refId": "A", "datasource": {"type": "tempo", "uid": "tempo"}, "queryType": "traceql", "query": traceql}],
        "range": {"from": "${__from}", "to": "${__to}"},
    }
    # Grafana expands the ${...} variables before following the link, so they stay unescaped.
    encoded = urllib.parse.quote(json.dumps({"a": pane}, separators=(",", ":")), safe="${}:,")
    return {"title": title, "url": "/explore?schemaVersion=1&panes=" + encoded, "targetBlank": True}


def panel(title: str, targets: list, unit: str = "short", description: str = "", links=None, stack=False) -> dict:
    p = {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "range": True}
            for i, (expr, legend) in enumerate(targets)
        ],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"drawStyle": "line", "fillOpacity": 10, "stacking": {"mode": "normal" if stack else "none"}},
                "links": links or [],
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]}},
    }
    return p


def quantiles(metric: str, by: str, selector: str, legend: str, qs=(0.5, 0.95, 0.99)) -> list:
    return [
        (
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"p{int(q * 100)} {legend}",
        )
        for q in qs
    ]


def by_outcome(metric: str, label: str) -> list:
    return [(f"sum by ({label}) (rate({metric}{{{SELECTOR}}}[{RATE}]))", "{{%s}}" % label)]


def ratio_5xx(by: str) -> str:
    # `or ... * 0` keeps a 0 series per route when nothing failed, instead of "No data".
    failed = f'sum by ({by}) (rate(http_requests_total{{{API}, status=~"5.."}}[{RATE}]))'
    total = f"sum by ({by}) (rate(http_requests_total{{{API}}}[{RATE}]))"
    return f"({failed} or {total} * 0) / {total}"


def overview() -> list:
    return [
        panel(
            "Request rate by route",
            [(f"sum by (endpoint, method) (rate(http_requests_total{{{SELECTOR}}}[{RATE}]))", "{{method}} {{endpoint}}")],
            "reqps",
        ),
        panel(
            "Error ratio (5xx) by route",
            [(ratio_5xx("endpoint"), "{{endpoint}}")],
            "percentunit",
            "Share of requests answered with a server error; health probes excluded.",
        ),
        panel(
            "Latency by route (p50 / p95 / p99)",
            quantiles("http_requests_duration_seconds", "endpoint", API, "{{endpoint}}"),
            "s",
            "Click a series for the slow traces of that route in Tempo.",
            links=[tempo_link("Slow traces of this route in Tempo", "endpoint")],
        ),
        panel("Logins by outcome", by_outcome("auth_logins_total", "outcome"), "reqps", stack=True),
        panel("Registrations by outcome", by_outcome("auth_registrations_total", "outcome"), "reqps", stack=True),
        panel("Refreshes by outcome", by_outcome("auth_refresh_total", "outcome"), "reqps", stack=True),
        panel(
            "Refresh-token reuse detections",
            [(f'sum(increase(auth_refresh_total{{{SELECTOR}, outcome="reused"}}[{RATE}]))', "reuse detected")],
            "short",
            "A rotated refresh token presented after the grace period: the session family was revoked.",
        ),
        panel(
            "Rate-limited and locked",
            [
                (f"sum by (limiter) (rate(auth_rate_limited_total{{{SELECTOR}}}[{RATE}]))", "rate limited: {{limiter}}"),
                (f'sum(rate(auth_logins_total{{{SELECTOR}, outcome="locked"}}[{RATE}]))', "login refused: account locked"),
            ],
            "reqps",
        ),
        panel("Sessions revoked by reason", by_outcome("auth_sessions_revoked_total", "reason"), "ops", stack=True),
        panel("Access-token validations by outcome", by_outcome("auth_token_validations_total", "outcome"), "ops", stack=True),
        panel(
            "Signing keys",
            [
                (f"max by (state) (auth_signing_keys{{{SELECTOR}}})", "published: {{state}}"),
                (f"sum by (trigger) (increase(auth_key_rotations_total{{{SELECTOR}}}[1h]))", "created in 1h: {{trigger}}"),
            ],
            "short",
            "Keys in the JWKS by state (next: published, not signing yet) and new keys by trigger.",
        ),
        panel(
            "Age of the signing key in use",
            [
                (f"time() - max(auth_signing_key_active_created_timestamp_seconds{{{SELECTOR}}})", "age"),
                (f"max(auth_signing_key_rotation_period_seconds{{{SELECTOR}}})", "rotation period"),
            ],
            "s",
            "Past the rotation period, automatic rotation is stuck (AuthApiSigningKeyRotationStuck).",
        ),
        panel(
            "Account mails by kind and outcome",
            [(f"sum by (kind, outcome) (rate(auth_emails_total{{{SELECTOR}}}[{RATE}]))", "{{kind}}: {{outcome}}")],
            "ops",
            "queued by requests, throttled (per-address limit), then sent, failed (retried), dead or skipped (no account).",
            stack=True,
        ),
        panel(
            "Mail outbox waiting",
            [
                (f"max(auth_outbox_pending{{{SELECTOR}}})", "pending"),
                (f"max(auth_outbox_oldest_pending_age_seconds{{{SELECTOR}}}) / 60", "oldest waited (minutes)"),
            ],
            "short",
            "Mails not yet delivered, and how long the oldest has waited; every instance reports the same (AuthApiMailOutboxBacklog past 15 minutes).",
        ),
        panel("Password resets by outcome", by_outcome("auth_password_resets_total", "outcome"), "ops", stack=True),
        panel(
            "Second factors by method and outcome",
            [(f"sum by (method, outcome) (rate(auth_mfa_verifications_total{{{SELECTOR}}}[{RATE}]))", "{{method}} {{outcome}}")],
            "ops",
            "Codes and recovery codes presented at /auth/mfa/verify, on confirmation and on step-up; invalid or replayed ones after a right password are a stolen password in use (AuthApiSecondFactorFailureSpike).",
            stack=True,
        ),
        panel(
            "Passkey ceremonies by outcome",
            [(f"sum by (ceremony, outcome) (rate(auth_passkey_ceremonies_total{{{SELECTOR}}}[{RATE}]))", "{{ceremony}} {{outcome}}")],
            "ops",
            "Registrations, sign-ins with a passkey alone and second steps: started, then success or why not; cloned is a counter that went back, a copied key in use (AuthApiPasskeyCloneDetected).",
            stack=True,
        ),
        row("Operators"),
        panel(
            "Admin actions by action and outcome",
            [(f"sum by (action, outcome) (increase(auth_admin_actions_total{{{SELECTOR}}}[{RATE}]))", "{{action}} {{outcome}}")],
            "short",
            "What operators did to accounts through the admin API or `auth-api users`: disable, enable, sign_out, erase, reset_mfa, send_verification, mark_verified. Who did it is the event's actor (AuthApiAdminActionsUnusual past 20 in 15 minutes).",
            stack=True,
        ),
        panel(
            "Accounts disabled, enabled and erased",
            [(f'sum by (name) (increase(auth_security_events_total{{{SELECTOR}, name=~"user.disabled|user.enabled|user.erased"}}[{RATE}]))', "{{name}}")],
            "short",
            "The account changes operators made, from the security trail.",
            stack=True,
        ),
        panel(
            "Security events by name",
            [(f"sum by (name) (rate(auth_security_events_total{{{SELECTOR}}}[{RATE}]))", "{{name}}")],
            "ops",
            "The trail users read at /auth/events and the `security` log target carries: a rise in login.failed, login.locked or refresh.reuse_detected is an attack in progress.",
            stack=True,
        ),
    ]


def saturation() -> list:
    return [
        panel(
            "Pool connections",
            [
                (f"sum by (state) (auth_db_pool_connections{{{SELECTOR}}})", "database {{state}}"),
                (f"sum by (state) (auth_redis_pool_connections{{{SELECTOR}}})", "redis {{state}}"),
            ],
            "short",
            "Open connections by state; in_use near DATABASE_POOL_MAX / REDIS_POOL_MAX means requests queue.",
        ),
        panel(
            "Redis nodes up",
            [(f"min by (node, role) (auth_redis_node_up{{{SELECTOR}}})", "{{node}} {{role}}")],
            "short",
            "Each Redis node the service uses (the one server, the primary the Sentinels name, or every node of a cluster): 1 when every instance's probe at its last scrape found it answering, 0 when one found no PING answer within STORE_TIMEOUT_MS or the cluster flags the node failing.",
        ),
        panel(
            "Redis node probe failures",
            [(f"sum by (node) (rate(auth_redis_node_probe_failures_total{{{SELECTOR}}}[{RATE}]))", "{{node}}")],
            "ops",
            "Failed probes per node, one probe per scrape and instance: which node of a cluster the errors come from. A primary failing over shows here for the seconds its replica takes to replace it.",
        ),
        panel(
            "Dependency latency p95",
            [
                (
                    "histogram_quantile(0.95, sum by (dependency, operation, le) "
                    f"(rate(auth_dependency_duration_seconds_bucket{{{SELECTOR}}}[{RATE}])))",
                    "{{dependency}} {{operation}}",
                )
            ],
            "s",
        ),
        panel(
            "argon2 wait for a hashing slot",
            quantiles("auth_password_hash_wait_seconds", "instance", SELECTOR, "{{instance}}", (0.5, 0.95)),
            "s",
            "Time queued for the bounded hashing pool (HASH_CONCURRENCY).",
        ),
        panel(
            "argon2 duration",
            quantiles("auth_password_hash_duration_seconds", "instance", SELECTOR, "{{instance}}", (0.5, 0.95)),
            "s",
        ),
        panel(
            "argon2 in flight",
            [(f"sum by (instance) (auth_password_hash_in_flight{{{SELECTOR}}})", "{{instance}}")],
            "short",
        ),
        panel(
            "CPU",
            [(f"sum by (instance) (rate(process_cpu_seconds_total{{{SELECTOR}}}[{RATE}]))", "{{instance}}")],
            "short",
            "Cores used per instance.",
        ),
        panel(
            "Memory (RSS)",
            [(f"sum by (instance) (process_resident_memory_bytes{{{SELECTOR}}})", "{{instance}}")],
            "bytes",
        ),
        panel("Open file descriptors", [(f"sum by (instance) (process_open_fds{{{SELECTOR}}})", "{{instance}}")], "short"),
        panel(
            "Replicas up",
            [
                ('sum by (namespace) (up{job="auth-api", namespace=~"$namespace"})', "up {{namespace}}"),
                ('count by (version, git_sha) (auth_build_info{job="auth-api", namespace=~"$namespace"})', "{{version}} {{git_sha}}"),
            ],
            "short",
        ),
    ]


def variables() -> list:
    def query_var(name: str, query: str) -> dict:
        return {
            "name": name,
            "label": name,
            "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": query, "refId": name},
            "definition": query,
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
        }

    return [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}},
        query_var("namespace", 'label_values(auth_build_info{job="auth-api"}, namespace)'),
        query_var("instance", 'label_values(auth_build_info{job="auth-api", namespace=~"$namespace"}, instance)'),
    ]


def row(title: str) -> dict:
    """A row heading: the panels after it start on a new line under it."""
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def dashboard(uid: str, title: str, panels: list) -> dict:
    y, column = 0, 0
    for i, p in enumerate(panels):
        p["id"] = i + 1
        if p["type"] == "row":
            y += 8 if column else 0
            p["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y, column = y + 1, 0
            continue
        p["gridPos"] = {"h": 8, "w": 12, "x": column * 12, "y": y}
        y, column = (y + 8, 0) if column else (y, 1)
    return {
        "uid": uid,
        "title": title,
        "tags": ["auth-api"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables()},
        "links": [{"title": "auth-api dashboards", "type": "dashboards", "tags": ["auth-api"], "asDropdown": False}],
        "panels": panels,
    }


DASHBOARDS = {
    "auth-api-overview.json": dashboard("auth-api-overview", "auth-api / Overview", overview()),
    "auth-api-saturation.json": dashboard("auth-api-saturation", "auth-api / Saturation & dependencies", saturation()),
}


class LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so generated YAML stays readable in review."""


LiteralDumper.add_representer(
    str,
    lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None),
)


def dump_yaml(docs: list) -> str:
    header = "# Generated by deploy/generate.py: edit the source and re-run it.\n"
    return header + yaml.dump_all(docs, Dumper=LiteralDumper, sort_keys=False, width=200)


def outputs() -> dict:
    files = {f"grafana/dashboards/{name}": json.dumps(d, indent=2) + "\n" for name, d in DASHBOARDS.items()}
    configmaps = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "auth-api-dashboard-" + name.removeprefix("auth-api-").removesuffix(".json"),
                # The Grafana chart's dashboard sidecar loads every ConfigMap with this label.
                "labels": {"grafana_dashboard": "1"},
                "annotations": {"grafana_folder": "auth-api"},
            },
            "data": {name: json.dumps(d, indent=2) + "\n"},
        }
        for name, d in DASHBOARDS.items()
    ]
    files["k8s/base/grafana-dashboards.yaml"] = dump_yaml(configmaps)
    rules = yaml.safe_load((DEPLOY / "prometheus/rules/auth-api.yml").read_text())
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "auth-api", "labels": {"release": "prometheus"}},
        "spec": rules,
    }
    files["k8s/base/prometheusrule.yaml"] = dump_yaml([rule])
    return files


def main() -> int:
    check = sys.argv[1:] == ["--check"]
    stale = []
    for rel, text in outputs().items():
        path = DEPLOY / rel
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print("wrote", path.relative_to(DEPLOY.parent))
    if stale:
        print("out of date (run python3 deploy/generate.py):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
