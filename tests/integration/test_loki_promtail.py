"""The Promtail configuration and the Loki data source against the logs Tape really writes
(no Promtail or Loki runs here: neither has a Debian package)."""

from __future__ import annotations

import fnmatch
import json
import logging
import tomllib
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from cli.logs import CONTEXT_FIELDS, configure_logging

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
PROMTAIL = ROOT / "infra" / "promtail" / "promtail.yaml"
LABELS = {"run", "component", "market", "symbol"}
WRITTEN_KEYS = {"ts", "level", "logger", "msg", "exc", *CONTEXT_FIELDS}


def promtail() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(PROMTAIL.read_text())
    return loaded


def stage(config: dict[str, Any], name: str) -> Any:
    (scrape,) = config["scrape_configs"]
    found = [s[name] for s in scrape["pipeline_stages"] if name in s]
    assert len(found) == 1, f"one {name} stage expected"
    return found[0]


def path_glob(config: dict[str, Any]) -> str:
    (scrape,) = config["scrape_configs"]
    (static,) = scrape["static_configs"]
    glob: str = static["labels"]["__path__"]
    return glob


def test_promtail_has_its_required_sections() -> None:
    config = promtail()
    assert config["server"]["http_listen_address"] == "127.0.0.1"
    assert config["positions"]["filename"]
    (client,) = config["clients"]
    assert client["url"].endswith("/loki/api/v1/push}")  # ${TAPE_LOKI_PUSH_URL:-...}
    (scrape,) = config["scrape_configs"]
    assert scrape["job_name"] == "tape"
    assert path_glob(config) == "${TAPE_LOG_DIR}/*.jsonl"


def test_the_pipeline_labels_run_component_market_symbol_from_fields_tape_writes() -> None:
    config = promtail()
    expressions = stage(config, "json")["expressions"]
    labels = set(stage(config, "labels"))
    assert labels >= LABELS
    assert labels <= set(expressions), "a label that no json expression extracts"
    assert set(expressions.values()) <= WRITTEN_KEYS, set(expressions.values()) - WRITTEN_KEYS
    timestamp = stage(config, "timestamp")
    assert (timestamp["source"], timestamp["format"]) == ("ts", "RFC3339Nano")


def test_a_real_tape_log_line_carries_every_extracted_field(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "alerts.jsonl"
    setup = configure_logging("alerts", run="paper-1", path=log_file)
    try:
        logging.getLogger("tape.alerts").warning(
            "alert fired", extra={"market": "crypto", "symbol": "BTCUSDT", "seq": 12}
        )
    finally:
        setup.close()
    (line,) = [json.loads(text) for text in log_file.read_text().splitlines()]
    expressions = stage(promtail(), "json")["expressions"]
    assert {field: line[field] for field in expressions.values()} == {
        "ts": line["ts"], "level": "warning", "logger": "tape.alerts", "component": "alerts",
        "run": "paper-1", "market": "crypto", "symbol": "BTCUSDT",
    }  # fmt: skip
    assert datetime.fromisoformat(line["ts"]).utcoffset() is not None  # RFC 3339 with its zone
    glob = path_glob(promtail()).replace("${TAPE_LOG_DIR}", str(log_file.parent))
    assert fnmatch.fnmatch(str(log_file), glob)
    assert not fnmatch.fnmatch(str(log_file) + ".1", glob)  # a rotated file is not read twice


def test_the_shipped_examples_log_where_promtail_reads() -> None:
    defaults = ROOT / "cli" / "defaults"
    alerts = tomllib.loads((defaults / "alerts.toml").read_text())["log"]
    scheduler = tomllib.loads((defaults / "jobs.toml").read_text())["scheduler"]["log"]
    folders = {str(PurePosixPath(path).parent) for path in (alerts, scheduler)}
    assert len(folders) == 1, "one TAPE_LOG_DIR must hold both logs"
    pattern = PurePosixPath(path_glob(promtail())).name
    assert all(fnmatch.fnmatch(PurePosixPath(path).name, pattern) for path in (alerts, scheduler))


def test_grafana_has_a_loki_data_source() -> None:
    text = (ROOT / "infra/grafana/provisioning/datasources/tape.yaml").read_text()
    sources = {s["uid"]: s for s in yaml.safe_load(text)["datasources"]}
    assert sources["tape-loki"]["type"] == "loki"
    assert sources["tape-loki"]["url"] == "${TAPE_LOKI_URL}"
    assert sources["tape-influx"]["isDefault"] is True  # Loki does not take the default
