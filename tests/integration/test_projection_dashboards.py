"""Grafana dashboards, provisioning and the compose file, checked structurally (no Grafana or
Docker engine runs here).

Every panel query may name only what the projections write: Influx measurements, tags and
fields from ``projections.metrics_influx.series_of`` (the registry the fold is tested against),
SQL tables and columns from the DDL in ``projections/sql/`` (loaded into an in-memory SQLite).
The SQL is also planned (``EXPLAIN``) by PostgreSQL against a real ledger schema when one is
available.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from projections.base import DEFAULT_SCHEMA
from projections.ledger_sqlite import ddl_scripts
from projections.metrics_influx import series_of
from tests.contracts.projection_servers import scratch_database

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DASHBOARDS = sorted((INFRA / "dashboards").glob("*.json"))
COMPOSE = INFRA / "compose" / "docker-compose.yml"

# --- reading the files ----------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _datasources() -> dict[str, str]:
    """uid -> type of every provisioned data source."""
    found: dict[str, str] = {}
    for path in sorted((INFRA / "grafana" / "provisioning" / "datasources").glob("*.yaml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            found[source["uid"]] = source["type"]
    return found


def _expansions(dashboard: dict[str, Any], text: str) -> list[str]:
    """``text`` with each custom variable replaced by each of its values (query variables and
    Grafana's own macros are left for the checks to skip)."""
    texts = [text]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "custom" and f"${variable['name']}" in text:
            values = [option["value"] for option in variable["options"]]
            texts = [t.replace(f"${variable['name']}", value) for t in texts for value in values]
    return texts


def _queries(kind: str) -> list[tuple[str, str]]:
    """(where, query) of every query of data source type ``kind``: panel targets and
    template variables, with custom variables expanded."""
    types = _datasources()
    found: list[tuple[str, str]] = []
    for path in DASHBOARDS:
        dashboard = _load(path)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                if types[target["datasource"]["uid"]] == kind:
                    text = target["rawSql"] if kind.endswith("postgresql-datasource") else target["query"]
                    where = f"{path.name} panel {panel['title']!r} {target['refId']}"
                    found += [(where, expanded) for expanded in _expansions(dashboard, text)]
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable["type"] == "query" and types[variable["datasource"]["uid"]] == kind:
                where = f"{path.name} variable {variable['name']}"
                found += [(where, text) for text in _expansions(dashboard, variable["query"])]
    return found


# --- Influx -------------------------------------------------------------------------------------

_QUOTED = re.compile(r'"([^"]+)"')
_INFLUX_SELECT = re.compile(
    r'^SELECT (?P<select>.+?) FROM "(?P<measurement>[^"]+)"(?: WHERE (?P<where>.+?))?'
    r"(?: GROUP BY (?P<group>.+?))?$"
)
_SHOW_TAG_VALUES = re.compile(r'^SHOW TAG VALUES FROM "(?P<measurement>[^"]+)" WITH KEY = "(?P<key>[^"]+)"$')


def _influx_names(query: str) -> tuple[str, set[str], set[str]]:
    """(measurement, fields named, tags named) of one InfluxQL statement in the house style:
    identifiers double-quoted, ``AS "alias"`` after a selector."""
    show = _SHOW_TAG_VALUES.match(query)
    if show:
        return show["measurement"], set(), {show["key"]}
    match = _INFLUX_SELECT.match(query)
    assert match, f'not a SELECT ... FROM "measurement" [WHERE ...] [GROUP BY ...]: {query}'
    select = re.sub(r'\bAS "[^"]+"', "", match["select"])
    tags = set(_QUOTED.findall(match["where"] or "")) | set(_QUOTED.findall(match["group"] or ""))
    return match["measurement"], set(_QUOTED.findall(select)), tags


def test_dashboards_exist_and_use_only_provisioned_data_sources() -> None:
    assert {path.name for path in DASHBOARDS} >= {"trading.json", "data_health.json", "ops.json"}
    types = _datasources()
    assert set(types.values()) == {"influxdb", "grafana-postgresql-datasource", "loki"}
    uids, panel_ids = set(), set()
    for path in DASHBOARDS:
        dashboard = _load(path)
        assert dashboard["uid"] not in uids, f"{path.name}: duplicate dashboard uid"
        uids.add(dashboard["uid"])
        assert dashboard["panels"], path.name
        panel_ids = set()
        for panel in dashboard["panels"]:
            assert panel["id"] not in panel_ids, f"{path.name}: duplicate panel id {panel['id']}"
            panel_ids.add(panel["id"])
            assert panel["targets"], f"{path.name} {panel['title']}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in types, f"{path.name} {panel['title']}: unknown source"
                assert target["datasource"]["type"] == types[target["datasource"]["uid"]]


def test_trading_dashboard_covers_the_command_center() -> None:
    trading = _load(INFRA / "dashboards" / "trading.json")
    text = json.dumps(trading)
    for needed in ("nav_minor", "pnl_minor", "drawdown_e8", "exposure_e8", "order_funnel", "slippage_bps"):
        assert needed in text, needed
    ops = json.dumps(_load(INFRA / "dashboards" / "ops.json"))
    assert "journal_lag_records" in ops and "lag_s" in ops


def test_influx_queries_name_only_written_measurements_tags_and_fields() -> None:
    queries = _queries("influxdb")
    assert len(queries) >= 10
    measurements = set()
    for where, query in queries:
        measurement, fields, tags = _influx_names(query)
        series = series_of(measurement)
        assert series is not None, f"{where}: measurement {measurement!r} is never written"
        assert fields <= series.fields, f"{where}: unknown fields {fields - series.fields}"
        assert tags <= series.tags, f"{where}: unknown tags {tags - series.tags}"
        measurements.add(measurement)
    assert {"nav", "order_funnel", "fills", "projection", "ohlcv_1d"} <= measurements


def test_the_influx_check_catches_a_wrong_name() -> None:
    measurement, fields, tags = _influx_names(
        'SELECT last("navv") AS "nav" FROM "nav" WHERE $timeFilter GROUP BY time(1m), "ccy"'
    )
    series = series_of(measurement)
    assert series is not None and fields == {"navv"} and not fields <= series.fields
    assert tags == {"ccy"} and not tags <= series.tags
    assert series_of("ohlcv_daily") is None and series_of("navs") is None


# --- SQL ----------------------------------------------------------------------------------------


def _ddl_columns() -> dict[str, set[str]]:
    """table -> columns, from the versioned DDL the projections run."""
    db = sqlite3.connect(":memory:")
    db.executescript("\n".join(sql for _, _, sql in ddl_scripts()))
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {table: {row[1] for row in db.execute(f'PRAGMA table_info("{table}")')} for table in tables}


_SQL_WORDS = frozenset(
    re.split(
        r"\s+",
        "select from where and or not group by order asc desc limit as join on left inner count sum max "
        "min avg to_timestamp null is distinct case when then else end in coalesce",
    )
)
_SQL_TOKEN = re.compile(
    r"[0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?|'[^']*'|\$__\w+|\$\w+|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?|\"[^\"]*\""
)


def _sql_problems(query: str, columns: dict[str, set[str]]) -> list[str]:
    """Names in ``query`` that are not tables / columns of the ledger (house style: tables as
    ``tape_ledger.table``, no table aliases, column aliases after ``AS``)."""
    tokens = [t for t in _SQL_TOKEN.findall(query) if not t.startswith(("'", "$")) and not t[0].isdigit()]
    problems: list[str] = []
    tables = [t.split(".", 1)[1] for t in tokens if t.startswith(f"{DEFAULT_SCHEMA}.")]
    problems += [f"table {t}" for t in tables if t not in columns]
    visible = set().union(*(columns.get(t, set()) for t in tables)) if tables else set()
    previous = ""
    for token in tokens:
        word = token.lower()
        if previous == "as" or word in _SQL_WORDS or token.startswith(f"{DEFAULT_SCHEMA}."):
            pass
        elif "." in token:
            table, column = token.split(".", 1)
            if table not in tables or column not in columns.get(table, set()):
                problems.append(f"column {token}")
        elif token.strip('"') not in visible:
            problems.append(f"column {token}")
        previous = word
    if not tables:
        problems.append(f"no {DEFAULT_SCHEMA}.table in FROM")
    return problems


def test_sql_queries_name_only_ledger_tables_and_columns() -> None:
    columns = _ddl_columns()
    queries = _queries("grafana-postgresql-datasource")
    assert len(queries) >= 8
    for where, query in queries:
        assert not _sql_problems(query, columns), f"{where}: {_sql_problems(query, columns)}\n{query}"
    named = {t.split(".")[1] for _, q in queries for t in re.findall(rf"{DEFAULT_SCHEMA}\.\w+", q)}
    assert {"nav", "positions", "orders", "fills", "risk_events", "checkpoint", "runs"} <= named


def test_the_sql_check_catches_a_wrong_name() -> None:
    columns = _ddl_columns()
    good = f"SELECT status, count(*) AS n FROM {DEFAULT_SCHEMA}.orders GROUP BY status"
    assert _sql_problems(good, columns) == []
    assert _sql_problems(good.replace("orders", "orderz"), columns) == [
        "table orderz",
        "column status",
        "column status",
    ]
    assert _sql_problems(good.replace("status", "state"), columns) == ["column state", "column state"]
    joined = f"SELECT fills.qty FROM {DEFAULT_SCHEMA}.fills"
    assert _sql_problems(joined, columns) == ["column fills.qty"]


def _grafana_macros(query: str) -> str:
    query = re.sub(r"\$__unixEpochNanoFilter\(([^)]+)\)", r"(\1 BETWEEN 0 AND 9223372036854775807)", query)
    assert "$" not in query, f"a Grafana macro this test does not expand: {query}"
    return query


def test_sql_queries_plan_on_a_real_postgres_ledger() -> None:
    import psycopg

    from projections.ledger_postgres import PostgresLedger

    with scratch_database() as url:
        PostgresLedger.open(url, DEFAULT_SCHEMA).close()
        with psycopg.connect(url) as connection:
            for where, query in _queries("grafana-postgresql-datasource"):
                try:
                    connection.execute(f"EXPLAIN {_grafana_macros(query)}")  # type: ignore[arg-type]
                except psycopg.Error as error:
                    pytest.fail(f"{where}: {error}\n{query}")


# --- provisioning and compose ----------------------------------------------------------------


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_runs_the_three_servers_on_loopback_only() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "influxdb", "grafana"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["influxdb"]["image"].startswith("influxdb:")
    assert services["grafana"]["image"].startswith("grafana/")
    published = {}
    for name, service in services.items():
        for port in service["ports"]:
            host, _host_port, container_port = str(port).split(":")
            assert host == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            published[name] = int(container_port)
    assert published == {"postgres": 5432, "influxdb": 8086, "grafana": 3000}
    assert set(services["grafana"]["depends_on"]) == {"postgres", "influxdb"}


def test_compose_mounts_existing_repo_paths_into_grafana() -> None:
    compose = _compose()
    named = set(compose.get("volumes", {}))
    mounts: dict[str, Path] = {}
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                path = (COMPOSE.parent / source).resolve()
                assert path.exists() and ROOT in path.parents, f"{name}: {source} is not a repo path"
                mounts[target] = path
            else:
                assert source in named, f"{name}: volume {source} is not declared"
    assert mounts["/etc/grafana/provisioning"] == INFRA / "grafana" / "provisioning"
    providers = yaml.safe_load((INFRA / "grafana/provisioning/dashboards/tape.yaml").read_text())["providers"]
    (provider,) = providers
    assert mounts[provider["options"]["path"]] == INFRA / "dashboards"
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (INFRA / "dashboards" / Path(home).relative_to(provider["options"]["path"])).exists()


def test_datasource_variables_are_set_by_compose() -> None:
    text = "".join(p.read_text() for p in (INFRA / "grafana/provisioning/datasources").glob("*.yaml"))
    values = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # not the comments
    used = set(re.findall(r"\$\{(\w+)\}", values))
    environment = _compose()["services"]["grafana"]["environment"]
    assert used and used <= set(environment), used - set(environment)
    sources = {s["uid"]: s for s in yaml.safe_load(text)["datasources"]}
    assert sources["tape-postgres"]["user"] == "${TAPE_DASHBOARDS_USER}"
    assert environment["TAPE_DASHBOARDS_USER"] == "tape_dashboards"  # the grant-readonly default


# --- alert rules --------------------------------------------------------------------------------


def _alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in sorted((INFRA / "grafana" / "provisioning" / "alerting").glob("*.yaml")):
        provisioned = yaml.safe_load(path.read_text())
        assert provisioned["apiVersion"] == 1, path.name
        for group in provisioned["groups"]:
            assert group["name"] and group["folder"] and group["interval"], path.name
            rules += group["rules"]
    return rules


def test_alert_rules_query_only_written_series_and_reach_their_condition() -> None:
    rules = _alert_rules()
    titles = {rule["uid"]: rule["title"] for rule in rules}
    assert set(titles) == {
        "tape-drawdown", "tape-reject-rate", "tape-kill-switch", "tape-projection-backlog", "tape-staleness",
        "tape-disk-space", "tape-data-gap", "tape-venue-latency", "tape-bar-lag",
    }  # fmt: skip
    types = _datasources()
    for rule in rules:
        steps = {step["refId"]: step for step in rule["data"]}
        assert rule["condition"] in steps, rule["uid"]
        reached, ref = set(), rule["condition"]
        while ref in steps and ref not in reached:  # the condition's chain back to a query
            reached.add(ref)
            model = steps[ref]["model"]
            ref = model.get("expression", "")
        query_steps = [s for s in rule["data"] if s["datasourceUid"] != "__expr__"]
        assert query_steps and {s["refId"] for s in query_steps} <= reached | {ref}, rule["uid"]
        for step in query_steps:
            assert types[step["datasourceUid"]] == "influxdb", rule["uid"]
            query = step["model"]["query"].replace("''", "'")
            measurement, fields, tags = _influx_names(query)
            series = series_of(measurement)
            assert series is not None, f"{rule['uid']}: measurement {measurement!r} is never written"
            assert fields <= series.fields, f"{rule['uid']}: unknown fields {fields - series.fields}"
            assert tags <= series.tags, f"{rule['uid']}: unknown tags {tags - series.tags}"


def test_alert_rule_queries_run_on_a_real_influxd(tmp_path: Path) -> None:
    from projections.metrics_influx import InfluxV1
    from tests.contracts.projection_servers import running_influxd

    with running_influxd(tmp_path) as server:
        influx = InfluxV1(server.url, "tape")
        influx.create_database()
        for rule in _alert_rules():
            for step in rule["data"]:
                if step["datasourceUid"] != "__expr__":
                    query = step["model"]["query"].replace("$timeFilter", "time > now() - 15m")
                    assert influx.query(query) == [], rule["uid"]  # parses and runs (no data yet)
