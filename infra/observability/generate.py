"""Dashboards, SLO rules and the Prometheus Operator objects, generated from this one file.

`python infra/observability/generate.py` rewrites the committed outputs; `--check` fails when
they differ from what this script makes (tests/static/test_observability.py runs it). Plain JSON
(Grafana's dashboard model, schemaVersion 39) keeps the generator free of a builder dependency.

Outputs:
- `dashboards/*.json`: provisioned by compose, shipped to k8s as ConfigMaps (kustomization.yaml here).
- `prometheus/rules/slo.rules.yml`: SLI recording rules and multiwindow, multi-burn-rate alerts per
  public service for the objectives in `docs/slo.md` (the SLOS table below is their source).
- `k8s/prometheusrule.yaml`: every rules file wrapped as a PrometheusRule (Prometheus Operator).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE / "dashboards"
RULES = HERE / "prometheus" / "rules"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# Repository paths: the alert names the file; a deployment prefixes its own source browser.
RUNBOOKS = "docs/runbooks"
SERVICES = ("auth", "catalog", "billing", "playback")
SEL = 'namespace=~"$namespace", instance=~"$instance"'
HTTP = "http_server_request_duration_seconds"
# Probes and scrapes are not user traffic: they stay out of RED panels and SLIs.
NOT_PROBES = 'http_route!~".*/health/.*|.*/metrics"'

# Panels that show data only when something is wrong (or a job that the core path does not run),
# with what makes them show data; tests/e2e/test_observability.py causes each of these.
FAILURE_ONLY_PANELS = {
    "Dead-letter depth by queue": "a message forced to a dead-letter queue",
    "Dead-lettered events": "a message forced to a dead-letter queue",
}


# --- SLOs ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Slo:
    service: str
    availability: float  # share of requests answered without a 5xx
    latency_seconds: float  # a histogram bucket boundary
    latency_target: float  # share of requests faster than latency_seconds


SLOS = (
    Slo("auth", 0.999, 1.0, 0.99),  # login hashes with argon2id: ~0.3 s by design
    Slo("catalog", 0.999, 0.3, 0.99),
    Slo("billing", 0.999, 1.0, 0.99),  # checkout calls the payment provider
    Slo("playback", 0.999, 0.3, 0.99),
)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
# (severity, long window, short window, burn rate): the SRE workbook's multiwindow table for 30 days.
BURNS = (("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6), ("ticket", "1d", "2h", 3),
         ("ticket", "3d", "6h", 1))


def _sli_error(slo: Slo, kind: str, window: str) -> str:
    base = f'{HTTP}_count{{service="{slo.service}", {NOT_PROBES}}}'
    total = f"sum by (namespace, service) (rate({base}[{window}]))"
    if kind == "availability":
        bad = base.replace("}", ', http_response_status_code=~"5.."}')
        # `or ... * 0`: no 5xx series at all is a ratio of 0, not an empty (never alerting) result.
        return f"(sum by (namespace, service) (rate({bad}[{window}])) or {total} * 0) / {total}"
    fast = f'{HTTP}_bucket{{service="{slo.service}", {NOT_PROBES}, le="{slo.latency_seconds:g}"}}'
    return f"1 - sum by (namespace, service) (rate({fast}[{window}])) / {total}"


def slo_rules() -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for slo in SLOS:
        for kind, objective in (("availability", slo.availability), ("latency", slo.latency_target)):
            labels = {"service": slo.service, "slo": kind}
            records.append({"record": "slo:objective:ratio", "expr": f"vector({objective:g})", "labels": labels})
            for window in WINDOWS:
                records.append({"record": f"slo:sli_error:ratio_rate{window}", "expr": _sli_error(slo, kind, window),
                                "labels": labels})
    budget = "(1 - slo:objective:ratio)"
    records.append({"record": "slo:error_budget_remaining:ratio",
                    "expr": f"1 - slo:sli_error:ratio_rate30d / on (service, slo) group_left() {budget}"})
    records.append({"record": "slo:burn_rate:ratio_rate1h",
                    "expr": f"slo:sli_error:ratio_rate1h / on (service, slo) group_left() {budget}"})
    for kind in ("availability", "latency"):
        for severity, speed in (("page", "Fast"), ("ticket", "Slow")):
            name = f"SLO{kind.capitalize()}Burn{speed}"
            conditions = [
                f"(slo:sli_error:ratio_rate{long}{{slo=\"{kind}\"}} > on (service, slo) group_left() "
                f"({rate:g} * {budget})\n  and\n slo:sli_error:ratio_rate{short}{{slo=\"{kind}\"}} "
                f"> on (service, slo) group_left() ({rate:g} * {budget}))"
                for sev, long, short, rate in BURNS if sev == severity]
            alerts.append({
                "alert": name, "expr": "\nor\n".join(conditions) + "\n",
                "for": "2m" if severity == "page" else "15m",
                "labels": {"severity": severity},
                "annotations": {
                    "summary": f"{{{{ $labels.service }}}} is burning its {kind} error budget "
                               f"{'fast' if severity == 'page' else 'steadily'}",
                    "description": f"{kind.capitalize()} SLI error ratio {{{{ $value | humanizePercentage }}}} "
                                   "in {{ $labels.namespace }}; objectives in docs/slo.md.",
                    "runbook_url": f"{RUNBOOKS}/{name}.md"}})
    return {"groups": [{"name": "slo-recording", "rules": records},
                       {"name": "slo-alerts", "rules": alerts}]}


# --- dashboards ------------------------------------------------------------------------------------

def _target(expr: str, legend: str, ref: int) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + ref)}


def timeseries(title: str, *queries: tuple[str, str], unit: str = "short", description: str = "") -> dict[str, Any]:
    return {"type": "timeseries", "title": title, "description": description, "datasource": DATASOURCE,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi"}},
            "targets": [_target(expr, legend, i) for i, (expr, legend) in enumerate(queries)]}


def stat(title: str, expr: str, legend: str, *, unit: str = "short", description: str = "",
         thresholds: list[tuple[str, float | None]] | None = None) -> dict[str, Any]:
    steps = [{"color": color, "value": value} for color, value in (thresholds or [("green", None)])]
    return {"type": "stat", "title": title, "description": description, "datasource": DATASOURCE,
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
            "targets": [_target(expr, legend, 0)]}


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def _variables(extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    def query_var(name: str, label: str, query: str) -> dict[str, Any]:
        return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
                "query": {"query": query, "refId": name}, "definition": query, "refresh": 2,
                "includeAll": True, "multi": True, "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1}

    return {"list": [query_var("namespace", "Environment / namespace", "label_values(up, namespace)"),
                     query_var("instance", "Instance", 'label_values(up{namespace=~"$namespace"}, instance)'),
                     *(extra or [])]}


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], tags: list[str],
              links: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    laid: list[dict[str, Any]] = []
    x = y = 0
    for index, panel in enumerate(panels, start=1):
        width, height = (24, 1) if panel["type"] == "row" else (6, 4) if panel["type"] == "stat" else (12, 8)
        if x + width > 24 or panel["type"] == "row":
            x, y = 0, y + (8 if x else 0)
        laid.append({**panel, "id": index, "gridPos": {"x": x, "y": y, "w": width, "h": height}})
        x += width
        if panel["type"] == "row":
            x, y = 0, y + 1
    return {"uid": uid, "title": title, "tags": ["triple-academy", *tags], "timezone": "utc",
            "schemaVersion": 39, "version": 1, "editable": False, "graphTooltip": 1,
            "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "templating": _variables(),
            "annotations": {"list": []}, "links": links or [], "panels": laid}


def _red(service: str) -> list[dict[str, Any]]:
    sel = f'service="{service}", {SEL}, {NOT_PROBES}'
    total = f"sum by (http_route) (rate({HTTP}_count{{{sel}}}[$__rate_interval]))"
    return [
        row("Requests, errors, duration"),
        timeseries("Request rate by route", (
            f"sum by (http_request_method, http_route) (rate({HTTP}_count{{{sel}}}[$__rate_interval]))",
            "{{http_request_method}} {{http_route}}"), unit="reqps"),
        timeseries("5xx ratio by route", (
            f'(sum by (http_route) (rate({HTTP}_count{{{sel}, http_response_status_code=~"5.."}}[$__rate_interval]))'
            f" or {total} * 0) / {total}", "{{http_route}}"), unit="percentunit"),
        timeseries("Responses by status code", (
            f"sum by (http_response_status_code) (rate({HTTP}_count{{{sel}}}[$__rate_interval]))",
            "{{http_response_status_code}}"), unit="reqps"),
        timeseries("Latency p50 / p95 / p99", *(
            (f"histogram_quantile({q}, sum by (le) (rate({HTTP}_bucket{{{sel}}}[$__rate_interval])))", f"p{p}")
            for q, p in ((0.5, 50), (0.95, 95), (0.99, 99))), unit="s"),
        timeseries("p95 by route", (
            f"histogram_quantile(0.95, sum by (le, http_route) (rate({HTTP}_bucket{{{sel}}}[$__rate_interval])))",
            "{{http_route}}"), unit="s"),
        timeseries("SLO burn rate (1h)", (
            f'slo:burn_rate:ratio_rate1h{{service="{service}", namespace=~"$namespace"}}', "{{slo}}"),
            description="1 = spending the 30-day budget exactly; 14.4 over 1h pages."),
    ]


def _business(service: str, names: str, title: str) -> dict[str, Any]:
    return timeseries(title, (
        f'sum by (name) (increase(business_events_total{{service="{service}", name=~"{names}", {SEL}}}'
        "[$__rate_interval]))", "{{name}}"))


def service_dashboards() -> dict[str, dict[str, Any]]:
    queue_sel = 'namespace=~"$namespace"'
    business: dict[str, list[dict[str, Any]]] = {
        "auth": [
            _business("auth", "logins_succeeded|logins_failed|logins_throttled", "Logins and throttles"),
            _business("auth", "users_registered|access_tokens_issued|service_tokens_issued", "Sign-ups and tokens"),
            _business("auth", "refresh_token_reuse_detected|users_erased", "Refresh reuse and erasures"),
        ],
        "catalog": [
            _business("catalog", "enrollments_granted|enrollments_revoked", "Enrollments granted / revoked"),
            _business("catalog", "courses_created|courses_published", "Courses created / published"),
            timeseries("Public cache hit ratio", (
                'catalog:cache_hit_ratio:rate5m{namespace=~"$namespace"}', "{{cache}}"), unit="percentunit"),
            timeseries("SQL statements per request (p95)", (
                "histogram_quantile(0.95, sum by (le, route) (rate(catalog_sql_queries_per_request_bucket"
                f"{{{SEL}}}[$__rate_interval])))", "{{route}}")),
        ],
        "billing": [
            _business("billing", "checkouts_started|orders_paid|refunds|refunds_failed",
                      "Checkouts, orders paid, refunds"),
            timeseries("Money paid and refunded", (
                "sum by (name, currency) (increase(business_amount_minor_total{service=\"billing\", "
                f"{SEL}}}[$__rate_interval])) / 100", "{{name}} {{currency}}"),
                description="Major currency units (amounts are counted in cents)."),
            timeseries("Webhook events by type and outcome", (
                f"sum by (event_type, outcome) (increase(billing_webhook_events_total{{{SEL}}}[$__rate_interval]))",
                "{{event_type}} {{outcome}}")),
            timeseries("Webhooks rejected (signature, payload)", (
                f"sum by (reason) (increase(billing_webhook_rejected_total{{{SEL}}}[$__rate_interval]))",
                "{{reason}}")),
        ],
        "playback": [
            _business("playback", "tokens_issued|manifests_served", "Playback tokens issued, manifests served"),
            timeseries("Access refused by reason", (
                "sum by (action, reason) (increase(playback_access_decisions_total{decision=\"refused\", "
                f"{SEL}}}[$__rate_interval]))", "{{action}} {{reason}}")),
            timeseries("Stream-limit hits", (
                "sum by (reason) (increase(playback_sessions_ended_total{reason=\"replaced\", "
                f"{SEL}}}[$__rate_interval]))", "sessions replaced")),
            timeseries("Transcode queue depth", (
                'sum by (queue) (rabbitmq_queue_messages{queue=~".*playback\\\\.transcode(\\\\.retry)?", '
                f"{queue_sel}}})",
                "{{queue}}")),
            timeseries("Transcodes in flight", (f"sum(playback_transcode_in_flight{{{SEL}}})", "in flight")),
            timeseries("Transcode duration p95 and attempts", (
                "histogram_quantile(0.95, sum by (le) (rate(playback_transcode_duration_seconds_bucket"
                f"{{{SEL}}}[$__rate_interval])))", "p95"), (
                f"sum by (outcome) (increase(playback_transcode_duration_seconds_count{{{SEL}}}[$__rate_interval]))",
                "{{outcome}}")),
            _business("playback", "assets_ready|assets_failed|uploads_expired", "Assets ready / failed"),
        ],
    }
    return {f"service-{s}.json": dashboard(f"triple-{s}", f"Triple Academy / {s}",
                                           [*_red(s), row("Business"), *business[s]], ["service", s])
            for s in SERVICES}


def overview() -> dict[str, Any]:
    sel = f"{SEL}, {NOT_PROBES}"
    return dashboard("triple-overview", "Triple Academy / platform overview", [
        row("Service level objectives"),
        stat("Availability budget left (30d)",
             'min(slo:error_budget_remaining:ratio{slo="availability", namespace=~"$namespace"})', "worst service",
             unit="percentunit", thresholds=[("red", None), ("orange", 0.25), ("green", 0.5)]),
        stat("Latency budget left (30d)",
             'min(slo:error_budget_remaining:ratio{slo="latency", namespace=~"$namespace"})', "worst service",
             unit="percentunit", thresholds=[("red", None), ("orange", 0.25), ("green", 0.5)]),
        stat("Highest burn rate (1h)", 'max(slo:burn_rate:ratio_rate1h{namespace=~"$namespace"})', "burn",
             thresholds=[("green", None), ("orange", 1), ("red", 6)]),
        stat("Targets up", f"sum(up{{{SEL}}}) / count(up{{{SEL}}})", "up", unit="percentunit",
             thresholds=[("red", None), ("green", 1)]),
        timeseries("Error budget remaining by service", (
            'slo:error_budget_remaining:ratio{namespace=~"$namespace"}', "{{service}} {{slo}}"), unit="percentunit"),
        timeseries("Burn rate (1h) by service", (
            'slo:burn_rate:ratio_rate1h{namespace=~"$namespace"}', "{{service}} {{slo}}")),
        row("Traffic"),
        timeseries("Request rate by service", (
            f"sum by (service) (rate({HTTP}_count{{{sel}}}[$__rate_interval]))", "{{service}}"), unit="reqps"),
        timeseries("5xx ratio by service (5m)", (
            'service:http_request_errors:ratio_rate5m{namespace=~"$namespace"}', "{{service}}"), unit="percentunit"),
        *(timeseries(f"Latency p{p} by service", (
            f"histogram_quantile({q}, sum by (le, service) (rate({HTTP}_bucket{{{sel}}}[$__rate_interval])))",
            "{{service}}"), unit="s") for q, p in ((0.5, 50), (0.95, 95), (0.99, 99))),
        timeseries("Responses by class (2xx / 4xx / 429 / 5xx)", (
            f'sum by (class) (label_replace(rate({HTTP}_count{{{sel}}}[$__rate_interval]), "class", "$1xx", '
            '"http_response_status_code", "([0-9]).."))', "{{class}}"), (
            f'sum(rate({HTTP}_count{{{sel}, http_response_status_code="429"}}[$__rate_interval])) or vector(0)',
            "429"), unit="reqps",
            description="As the services answer them; Nginx's own 429s (limit_req) are in its access log."),
    ], ["overview"])


def events() -> dict[str, Any]:
    q = 'namespace=~"$namespace"'
    return dashboard("triple-events", "Triple Academy / events", [
        row("Outbox"),
        timeseries("Outbox lag by service", (f"max by (service) (events_outbox_lag_seconds{{{SEL}}})", "{{service}}"),
                   unit="s", description="Age of the oldest unpublished outbox row."),
        timeseries("Publish rate and failures", (
            f"sum by (service) (rate(events_published_total{{{SEL}}}[$__rate_interval]))", "published {{service}}"), (
            f"sum by (service) (rate(events_publish_failures_total{{{SEL}}}[$__rate_interval])) or vector(0)",
            "failed"), unit="ops"),
        row("Consumers"),
        timeseries("Consumed by outcome", (
            f"sum by (service, outcome) (rate(events_consumed_total{{{SEL}}}[$__rate_interval]))",
            "{{service}} {{outcome}}"), unit="ops"),
        timeseries("Dead-lettered events", (
            f"sum by (service, routing_key) (increase(events_dead_lettered_total{{{SEL}}}[$__rate_interval]))",
            "{{service}} {{routing_key}}")),
        timeseries("Dead-letter depth by queue", (
            f'sum by (queue) (rabbitmq_queue_messages{{queue=~".*\\\\.dlq", {q}}}) > 0', "{{queue}}"),
            description="Empty is healthy: see docs/runbooks/DeadLettersPresent.md."),
        timeseries("Backlog (ready + retry) by queue", (
            f'sum by (queue) (rabbitmq_queue_messages{{queue=~".*\\\\.events(\\\\.retry)?", {q}}})', "{{queue}}")),
        timeseries("Consumers per queue", (
            f'sum by (queue) (rabbitmq_queue_consumers{{queue=~".*\\\\.events", {q}}})', "{{queue}}")),
    ], ["events"])


def infrastructure() -> dict[str, Any]:
    return dashboard("triple-infrastructure", "Triple Academy / infrastructure", [
        row("PostgreSQL"),
        timeseries("Connections by database and state", (
            f"sum by (datname, state) (pg_stat_activity_count{{{SEL}}})", "{{datname}} {{state}}")),
        timeseries("Connection saturation", (
            f"sum by (instance) (pg_stat_activity_count{{{SEL}}}) / on (instance) "
            f"max by (instance) (pg_settings_max_connections{{{SEL}}})", "{{instance}}"), unit="percentunit",
            description="Every service's pool (pool_size + max_overflow per replica) shares max_connections."),
        timeseries("Transactions", (
            f"sum by (datname) (rate(pg_stat_database_xact_commit{{{SEL}}}[$__rate_interval]))", "{{datname}}"),
            unit="ops"),
        row("Redis"),
        timeseries("Redis commands", (
            f"sum(rate(redis_commands_processed_total{{{SEL}}}[$__rate_interval]))", "commands"), unit="ops"),
        timeseries("Redis clients and memory", (f"sum(redis_connected_clients{{{SEL}}})", "clients"), (
            f"sum(redis_memory_used_bytes{{{SEL}}}) / 1024 / 1024", "memory MiB")),
        row("RabbitMQ"),
        timeseries("Messages by queue", (
            'sum by (queue) (rabbitmq_queue_messages{namespace=~"$namespace"})', "{{queue}}")),
        timeseries("Connections and channels", (
            'sum(rabbitmq_connections{namespace=~"$namespace"})', "connections"), (
            'sum(rabbitmq_channels{namespace=~"$namespace"})', "channels")),
    ], ["infrastructure"])


def all_dashboards() -> dict[str, dict[str, Any]]:
    return {"overview.json": overview(), **service_dashboards(), "events.json": events(),
            "infrastructure.json": infrastructure()}


# --- outputs ---------------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Multi-line PromQL as literal blocks, so the generated rules read like the hand-written ones."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def _yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=120)


def _rule_files() -> dict[str, dict[str, Any]]:
    """Every rules file: the hand-written ones as committed, the SLO one as generated."""
    files = {p.name: yaml.safe_load(p.read_text()) for p in sorted(RULES.glob("*.yml")) if p.name != "slo.rules.yml"}
    return {**files, "slo.rules.yml": slo_rules()}


def outputs() -> dict[Path, str]:
    out = {DASHBOARDS / name: json.dumps(board, indent=2, sort_keys=True) + "\n"
           for name, board in all_dashboards().items()}
    header = "# Generated by infra/observability/generate.py from its SLOS table: do not edit.\n"
    out[RULES / "slo.rules.yml"] = header + _yaml(slo_rules())
    operator = [{"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                 "metadata": {"name": f"triple-academy-{name.removesuffix('.rules.yml')}",
                              "labels": {"app.kubernetes.io/part-of": "triple-academy"}},
                 "spec": rules} for name, rules in _rule_files().items()]
    out[HERE / "k8s" / "prometheusrules.yaml"] = (
        "# Generated by infra/observability/generate.py from prometheus/rules/: do not edit.\n"
        + "---\n".join(_yaml(doc) for doc in operator))
    return out


def main(argv: list[str]) -> int:
    stale = []
    for path, text in outputs().items():
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"stale: {path.relative_to(HERE)} (run python infra/observability/generate.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
