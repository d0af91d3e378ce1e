"""Monitoring checked with Prometheus's own tools: the daemon's real /metrics, the alert
rules and their unit tests, every dashboard query, and a real Prometheus server scraping
a running daemon and evaluating the rules on what it scraped."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, wait_for
from tests.integration.conftest import HotfolderProcess
from tests.integration.test_manifests import drop
from tests.samples import pdf_bytes

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "config" / "prometheus"
ALERTS = RULES_DIR / "alerts.yml"
ALERT_TESTS = RULES_DIR / "alerts.test.yml"
PROMETHEUS_EXAMPLE = RULES_DIR / "prometheus.yml"
DASHBOARD = REPO / "config" / "grafana" / "hotfolder.json"
MONITORING_DOC = REPO / "docs" / "monitoring.md"

# Grafana's interval variables become a duration, dashboard variables a match-all regex
# (what Grafana sends for "All"): the query must parse either way.
GRAFANA_INTERVALS = re.compile(
    r"\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}"
)
GRAFANA_VARIABLES = re.compile(r"\$(?:\{(?:folder|instance)(?::\w+)?\}|(?:folder|instance)\b)")
# Metric names the project owns or relies on; `up` is made by Prometheus, not served.
# (Not the parts of recording rule names such as hotfolder:process_start:timestamp_seconds.)
METRIC_NAME = re.compile(r"(?<![\w:])(?:hotfolder|process|python)_\w*(?![\w:])")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real promtool (Debian package `prometheus`)."""
    binary = shutil.which("promtool")
    assert binary is not None, "promtool is missing: install the Debian package prometheus"
    return subprocess.run(
        [binary, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(response.read().decode())


def served_names(exposition: str) -> set[str]:
    """Every series name in an exposition, histogram/summary parts included."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_queries() -> dict[str, str]:
    """Every PromQL text of the dashboard by where it is: panel targets and the
    series selectors inside the variables' label_values()."""
    board = dashboard()
    queries = {
        f"panel {panel['id']} ({panel['title']}) {target['refId']}": target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
    }
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
            assert match, f"variable {variable['name']}: {variable['definition']}"
            queries[f"variable {variable['name']}"] = match.group(1)
    return queries


def as_promql(query: str) -> str:
    """A Grafana query as plain PromQL, the way Grafana sends it with "All" selected."""
    query = GRAFANA_VARIABLES.sub(".*", GRAFANA_INTERVALS.sub("5m", query))
    assert "$" not in query, f"unknown Grafana variable in {query!r}"
    return query


def rule_texts() -> list[str]:
    """The expr of every rule in alerts.yml (block scalars included)."""
    exprs: list[str] = []
    lines = ALERTS.read_text().splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("expr: |"):
            indent = len(line) - len(line.lstrip())
            block = []
            for following in lines[number + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                block.append(following)
            exprs.append("\n".join(block))
        elif stripped.startswith("expr:"):
            exprs.append(stripped.removeprefix("expr:"))
    return exprs


@pytest.fixture
def busy_daemon(hotfolder: type[HotfolderProcess]) -> tuple[HotfolderProcess, int]:
    """A daemon that converted real PDFs and failed one job, so histograms and the
    failure counters hold data; returns it and its HTTP port."""
    port = free_port()
    daemon = hotfolder(
        [
            {"name": "pdf", "workflow": "pdf-optimize"},
            {"name": "faults", "workflow": "test-faults"},
        ],
        http={"listen": f"127.0.0.1:{port}"},
    ).start()
    drop(daemon.dir("pdf") / "one.pdf", pdf_bytes(pages=1))
    drop(daemon.dir("pdf") / "two.pdf", pdf_bytes(pages=3))
    drop(daemon.dir("faults") / "bad.job", b"broken")
    daemon.wait_finished("pdf", 2)
    daemon.wait_finished("faults", 1)
    return daemon, port


def test_promtool_accepts_the_real_metrics_of_a_working_daemon(busy_daemon) -> None:
    """`promtool check metrics` finds nothing to complain about in a real scrape."""
    _, port = busy_daemon
    # The scrape shows the work: histogram observations and a failure by code. Status
    # files appear a moment before the listeners hear of the job: wait for the counts.
    done = 'hotfolder_job_duration_seconds_count{folder="pdf",workflow="pdf-optimize"} 2.0'

    def counted() -> str:
        text = scrape(port)
        return text if done in text and 'code="tool_failed"' in text else ""

    exposition = wait_for(counted, what="the finished jobs in the metrics")
    assert (
        'hotfolder_jobs_failed_total{code="tool_failed",folder="faults",workflow="test-faults"} 1.0'
        in exposition
    )
    result = promtool("check", "metrics", stdin=exposition)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_queries_rules_and_docs_only_name_metrics_the_daemon_serves(busy_daemon) -> None:
    """A misspelt metric in a panel, a rule or a rule test would show nothing and alert
    never; each metric family served is documented in docs/monitoring.md."""
    _, port = busy_daemon
    exposition = scrape(port)
    served = served_names(exposition)
    named = {
        (where, name)
        for where, query in dashboard_queries().items()
        for name in METRIC_NAME.findall(query)
    }
    named |= {("alerts.yml", n) for text in rule_texts() for n in METRIC_NAME.findall(text)}
    series = re.findall(r"series: '([a-zA-Z_:][a-zA-Z0-9_:]*)\{", ALERT_TESTS.read_text())
    named |= {("alerts.test.yml", name) for name in series if name != "up"}
    assert {name for _, name in named} >= {"hotfolder_jobs_finished_total", "hotfolder_watch_up"}
    assert sorted((w, n) for w, n in named if n not in served) == []

    doc = MONITORING_DOC.read_text()
    families = re.findall(r"^# TYPE (hotfolder_\w+) ", exposition, re.MULTILINE)
    undocumented = [name for name in families if f"| `{name}` |" not in doc]
    assert undocumented == []


def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    """Rules are valid (with every lint), their unit tests pass, and those tests show
    every alert both firing and staying silent; the example scrape config is valid."""
    check = promtool("check", "rules", "--lint=all", "--lint-fatal", str(ALERTS))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout

    tests = promtool("test", "rules", str(ALERT_TESTS))
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "SUCCESS" in tests.stdout

    alerts = set(re.findall(r"^\s*- alert: (\w+)$", ALERTS.read_text(), re.MULTILINE))
    assert len(alerts) >= 9
    cases = re.findall(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", ALERT_TESTS.read_text())
    assert {name for name, empty in cases if not empty} == alerts, "an alert never fires"
    assert {name for name, empty in cases if empty} == alerts, "an alert is never silent"

    config = promtool("check", "config", str(PROMETHEUS_EXAMPLE))
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each panel query and variable selector, as Grafana would send it, parses:
    written as recording rules for `promtool check rules`."""
    queries = dashboard_queries()
    # The rule name says where a query that does not parse is ("dashboard:panel_6_...").
    rules = [
        {"record": "dashboard:" + re.sub(r"\W+", "_", where).strip("_"), "expr": as_promql(query)}
        for where, query in queries.items()
    ]
    # JSON is YAML: no YAML library needed to write a rule file.
    rule_file = tmp_path / "dashboard-rules.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_promql_examples_in_the_docs_parse(tmp_path: Path) -> None:
    """The example queries of docs/monitoring.md are valid PromQL (each is the run of
    lines after a comment)."""
    blocks = re.findall(r"```promql\n(.*?)```", MONITORING_DOC.read_text(), re.DOTALL)
    assert blocks
    examples: list[str] = []
    for block in blocks:
        for chunk in re.split(r"^#.*$|^\s*$", block, flags=re.MULTILINE):
            if chunk.strip():
                examples.append(chunk.strip())
    assert len(examples) >= 5
    rules = [{"record": f"docs:example_{n}", "expr": e} for n, e in enumerate(examples)]
    rule_file = tmp_path / "docs-rules.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "docs", "rules": rules}]}))
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_provisionable() -> None:
    """The JSON Grafana's file provider loads: a stable uid, no sharing placeholders,
    the data source chosen by a variable, unique ids, units, panels that fit the grid."""
    board = dashboard()
    assert board["uid"] == "hotfolder-overview"
    assert board["title"] == "Hotfolder"
    assert isinstance(board["schemaVersion"], int)
    assert "__inputs" not in board and "__requires" not in board
    assert board.get("id") is None
    assert "DS_PROMETHEUS" not in DASHBOARD.read_text()

    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    folder = variables["folder"]
    assert folder["type"] == "query"
    assert folder["definition"].startswith("label_values(hotfolder_jobs_finished_total")
    assert folder["definition"].endswith(", folder)")
    assert folder["multi"] and folder["includeAll"] and folder["allValue"] == ".*"

    panels = board["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", title
            assert target["expr"].strip() and target["refId"], title
        assert panel["fieldConfig"]["defaults"]["unit"], f"{title}: no unit"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, title
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{title} overlaps {cells[(x, y)]}"
                cells[(x, y)] = title

    units = {panel["fieldConfig"]["defaults"]["unit"] for panel in panels}
    assert units >= {"s", "ops", "short", "Bps"}
    queries = " ".join(dashboard_queries().values())
    assert "histogram_quantile(0.99" in queries and "[$__rate_interval]" in queries
    titles = " ".join(panel["title"].lower() for panel in panels)
    topics = "throughput failures duration queue progress watch success workers bytes retries"
    for topic in [*topics.split(), "callbacks", "cleanup", "reloads"]:
        assert topic in titles, topic


class PrometheusServer:
    """A real Prometheus server on a loopback port with its own temp storage."""

    def __init__(self, root: Path, scrape_target: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "prometheus.log"
        # The example config with a fast pace and the daemon under test as target: the
        # test then also shows that its job name is the one the rules expect.
        config = PROMETHEUS_EXAMPLE.read_text()
        for old, new in (
            ("scrape_interval: 15s", "scrape_interval: 1s"),
            ("evaluation_interval: 15s", "evaluation_interval: 1s"),
            ('targets: ["127.0.0.1:9180"]', f'targets: ["{scrape_target}"]'),
            ('targets: ["127.0.0.1:9093"]', "targets: []"),
        ):
            assert old in config, f"{PROMETHEUS_EXAMPLE.name} no longer has {old!r}"
            config = config.replace(old, new)
        (root / "prometheus.yml").write_text(config)
        shutil.copyfile(ALERTS, root / "alerts.yml")
        binary = shutil.which("prometheus")
        assert binary is not None, "prometheus is missing: install the Debian package prometheus"
        self._log_handle = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
        try:
            wait_for(
                lambda: self._ready() or self.proc.poll() is not None, timeout=20, what="ready"
            )
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        return list(self.api("query", query=expr)["result"])

    def value(self, expr: str) -> float | None:
        """The single value of a query, or None while it has no result."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self._log_handle.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[type[PrometheusServer]]:
    """Start Prometheus servers on tmp_path; each is stopped (SIGTERM, then wait) at the end."""
    started: list[PrometheusServer] = []

    class Factory(PrometheusServer):
        def __init__(self, scrape_target: str) -> None:
            root = tmp_path / f"prometheus-{len(started)}"
            root.mkdir()
            super().__init__(root, scrape_target)
            started.append(self)

    yield Factory
    for server in started:
        server.stop()
    for server in started:
        assert server.proc.returncode == 0, server.log.read_text(errors="replace")


def test_prometheus_scrapes_the_daemon_and_evaluates_the_rules(
    hotfolder: type[HotfolderProcess], prometheus: type[PrometheusServer]
) -> None:
    """A real Prometheus with the example config scrapes a running daemon, sees its jobs
    counted, and evaluates every rule of alerts.yml on that data without an error."""
    port = free_port()
    daemon = hotfolder(
        [{"name": "faults", "workflow": "test-faults"}], http={"listen": f"127.0.0.1:{port}"}
    ).start()
    server = prometheus(f"127.0.0.1:{port}")
    # Prometheus 2.x hands new targets to the scrapers every 5 s: the first scrape takes a while.
    wait_for(lambda: server.value('up{job="hotfolder"}') == 1, timeout=20, what="a scrape")
    assert server.value("sum(hotfolder_jobs_finished_total)") == 0

    for name, command in (("a.job", "ok"), ("b.job", "ok"), ("c.job", "broken")):
        (daemon.dir("faults") / name).write_text(command)
    daemon.wait_finished("faults", 3, timeout=15)
    wait_for(
        lambda: server.value("sum(hotfolder_jobs_finished_total)") == 3,
        timeout=15,
        what="Prometheus to see 3 finished jobs",
    )
    assert server.value('sum(hotfolder_jobs_finished_total{status="failed"})') == 1

    def evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in server.api("rules")["groups"] for r in g["rules"]]
        return rules if all(r["health"] != "unknown" for r in rules) else None

    rules = wait_for(evaluated, timeout=15, what="every rule evaluated")
    assert len(rules) == len(rule_texts())
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    # The per-folder rules kept their identifying labels on real target labels, and the
    # join with process_start_time_seconds matched.
    labels = {"job": "hotfolder", "instance": f"127.0.0.1:{port}", "folder": "faults"}
    for record in (
        "hotfolder:jobs_finished:rate15m",
        "hotfolder:last_success_or_start:timestamp_seconds",
    ):
        wait_for(
            lambda record=record: (
                [r["metric"] for r in server.query(record)] == [{"__name__": record, **labels}]
            ),
            timeout=15,
            what=f"{record} with job, instance and folder",
        )
    firing = [a for a in server.api("alerts")["alerts"] if a["state"] == "firing"]
    assert firing == []
    assert daemon.stop() == 0
