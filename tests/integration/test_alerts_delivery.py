"""``tape alerts`` end to end: mail through a real SMTP server on loopback (aiosmtpd), Telegram
and webhooks through loopback HTTP servers; de-duplication and silences across restarts of
``alerts check`` and of a real ``alerts follow`` process; secrets never in any log line."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from cli.alert_routes import SmtpRoute
from cli.logs import Redactor
from cli.main import main
from domain.events import Event, KillSwitchRearmed, KillSwitchTripped, OrderSubmitted
from kernel.store import open_journal
from projections.alerts import Alert, Pending
from tests.alert_servers import HttpSink, MailSink, start_smtp

ROOT = Path(__file__).resolve().parents[2]
CANARY = "canary-S3cr3t:Tok/en+42"  # characters that URL-encoding changes, to check both forms


def trip(ts_ns: int) -> KillSwitchTripped:
    return KillSwitchTripped(
        ts_ns=ts_ns, trigger="drawdown", flatten=True, limit=1000, observed=1200, reason="drawdown 12% > 10%"
    )


def append(journal: Path, events: list[Event]) -> None:
    with open_journal(journal, writable=True) as writer:
        for event in events:
            writer.append(event)


def now_ns() -> int:
    return time.time_ns()


@pytest.fixture
def mail() -> Iterator[MailSink]:
    sink = MailSink(password=CANARY)
    controller = start_smtp(sink)
    yield sink
    controller.stop()


@pytest.fixture
def http() -> Iterator[HttpSink]:
    sink = HttpSink().start()
    yield sink
    sink.stop()


def smtp_route(mail: MailSink, **extra: str) -> str:
    lines = [
        "[[routes]]",
        'kind = "smtp"',
        'host = "127.0.0.1"',
        f"port = {mail.port}",
        'security = "none"',
        'sender = "tape@localhost"',
        'to = ["me@localhost"]',
        'username = "tape"',
        'password_env = "TAPE_TEST_SMTP_PASSWORD"',
        'min_severity = "warning"',
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


RULES = '[[rules]]\nkind = "kill_switch"\n\n'


def write_rules(tmp_path: Path, routes: str, settings: str = "") -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(settings + RULES + routes)
    return path


def test_check_mails_once_then_the_resolution_across_restarts(
    tmp_path: Path, mail: MailSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAPE_TEST_SMTP_PASSWORD", CANARY)
    journal = tmp_path / "j.sqlite"
    append(journal, [trip(now_ns())])
    rules = write_rules(tmp_path, smtp_route(mail), 'log = "logs/alerts.jsonl"\n')
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 1
    (received,) = mail.wait_for(1)
    assert received.message["Subject"] == "[tape CRITICAL] FIRING: kill_switch book"
    assert (
        "kill switch tripped (drawdown, halt and flatten): drawdown 12% > 10%"
        in received.message.get_payload()
    )
    append(journal, [trip(now_ns())])  # a second trip while the first is firing: nothing new
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 1
    append(journal, [KillSwitchRearmed(ts_ns=now_ns(), operator="me")])
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 0
    messages = mail.wait_for(2)
    assert [m.message["Subject"] for m in messages] == [
        "[tape CRITICAL] FIRING: kill_switch book",
        "[tape CRITICAL] RESOLVED: kill_switch book",
    ]
    lines = [json.loads(line) for line in (tmp_path / "logs/alerts.jsonl").read_text().splitlines()]
    fired = [line for line in lines if line["msg"].startswith("alert fired")]
    assert fired[0]["component"] == "alerts"
    assert fired[0]["seq"] == 0
    assert fired[0]["run"] == "j.sqlite"


def test_one_delivery_pass_sends_its_mails_over_one_smtp_connection(
    tmp_path: Path, mail: MailSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fire and its resolve in one pass (an alert storm: hundreds) used to open one SMTP
    connection, STARTTLS and login each; now one per pass, closed at its end."""
    monkeypatch.setenv("TAPE_TEST_SMTP_PASSWORD", CANARY)
    journal = tmp_path / "j.sqlite"
    append(journal, [trip(now_ns()), KillSwitchRearmed(ts_ns=now_ns(), operator="me")])
    rules = write_rules(tmp_path, smtp_route(mail))
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 0
    assert [m.message["Subject"] for m in mail.wait_for(2)] == [
        "[tape CRITICAL] FIRING: kill_switch book",
        "[tape CRITICAL] RESOLVED: kill_switch book",
    ]
    assert len(set(mail.peers)) == 1, mail.peers


def test_an_smtp_session_the_server_dropped_is_opened_again_once(tmp_path: Path) -> None:
    sink = MailSink()
    controller = start_smtp(sink)
    route = SmtpRoute("mail", "info", "127.0.0.1", sink.port, "tape@localhost", ["me@localhost"],
                      Redactor(), security="none")  # fmt: skip
    alert = Alert(
        1, "kill_switch", "book", "critical", "tripped", "firing", 0, 0, 0, None, None, None, None, None
    )
    try:
        route.send(Pending(alert, "mail", "fire"), "j")
        controller.stop()  # the server goes away with the session, and comes back
        controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
        controller.start()
        route.send(Pending(alert, "mail", "repeat"), "j")
        route.close()
        route.close()  # nothing open: nothing to do
    finally:
        controller.stop()
    assert len(sink.wait_for(2)) == 2 and len(set(sink.peers)) == 2


def test_silence_holds_across_restarts_and_the_alert_is_sent_when_it_ends(
    tmp_path: Path, mail: MailSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAPE_TEST_SMTP_PASSWORD", CANARY)
    journal = tmp_path / "j.sqlite"
    append(
        journal,
        [
            OrderSubmitted(
                ts_ns=now_ns(),
                order_id="o1",
                strategy_id="s",
                instrument_id=1,
                side=1,
                order_type="market",
                qty_raw=1,
                limit_px_raw=0,
                decision_px_raw=1,
            )
        ],
    )
    rules = write_rules(tmp_path, smtp_route(mail))
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 0
    assert (
        main(["alerts", "silence", "kill_switch", "--for", "1h", "--reason", "drill", "--rules", str(rules)])
        == 0
    )
    append(journal, [trip(now_ns())])
    for _ in range(2):  # two restarts: the silence is in the state file, not in memory
        assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 1
    time.sleep(0.3)
    assert mail.messages == []
    assert main(["alerts", "unsilence", "1", "--rules", str(rules)]) == 0
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 1
    assert len(mail.wait_for(1)) == 1
    assert main(["alerts", "ack", "1", "--by", "me", "--rules", str(rules)]) == 0
    assert main(["alerts", "list", "--all", "--rules", str(rules)]) == 0


def test_telegram_and_webhook_routes_post_to_loopback_with_tokens_from_a_private_file(
    tmp_path: Path, http: HttpSink
) -> None:
    token_file = tmp_path / "bot.token"
    token_file.write_text(CANARY + "\n")
    token_file.chmod(0o600)
    routes = (
        f'[[routes]]\nkind = "telegram"\nbase_url = "{http.url}"\nchat_id = "4242"\n'
        f'token_file = "{token_file}"\n\n'
        f'[[routes]]\nkind = "webhook"\nurl = "{http.url}/hook"\ntoken_file = "{token_file}"\n'
    )
    journal = tmp_path / "j.sqlite"
    append(journal, [trip(now_ns())])
    rules = write_rules(tmp_path, routes)
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 1
    by_path = {path: (headers, body) for path, headers, body in http.requests}
    headers, body = by_path[f"/bot{CANARY}/sendMessage"]
    assert body["chat_id"] == "4242"
    assert body["text"].startswith("[tape CRITICAL] FIRING: kill_switch book")
    headers, body = by_path["/hook"]
    assert headers["Authorization"] == f"Bearer {CANARY}"
    assert (body["rule"], body["key"], body["severity"], body["phase"], body["seq"]) == (
        "kill_switch",
        "book",
        "critical",
        "fire",
        0,
    )


def test_a_webhook_url_that_is_itself_the_secret_comes_from_url_env_and_never_reaches_a_log(
    tmp_path: Path, http: HttpSink, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Slack- or Discord-style hooks carry their token in the path: ``url_env`` / ``url_file``
    read the URL as a secret. It is posted to, and a failed delivery's log line hides it."""
    monkeypatch.setenv("QA_HOOK_URL", f"{http.url}/hooks/{CANARY}")
    journal = tmp_path / "j.sqlite"
    append(journal, [trip(now_ns())])
    rules = write_rules(tmp_path, '[[routes]]\nkind = "webhook"\nurl_env = "QA_HOOK_URL"\n')
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 1
    ((path, _, body),) = http.requests
    assert path == f"/hooks/{CANARY}" and body["rule"] == "kill_switch"
    hostile = HttpSink(status=400, answer={"ok": False}, echo_path=True).start()
    try:
        monkeypatch.setenv("QA_HOOK_URL", f"{hostile.url}/hooks/{CANARY}")
        failing = tmp_path / "failing"
        failing.mkdir()
        append(failing / "j.sqlite", [trip(now_ns())])
        rules = write_rules(
            failing, '[[routes]]\nkind = "webhook"\nurl_env = "QA_HOOK_URL"\n', 'log = "a.jsonl"\n'
        )
        assert main(["alerts", "check", str(failing / "j.sqlite"), "--rules", str(rules)]) == 1
    finally:
        hostile.stop()
    log_text = (failing / "a.jsonl").read_text()
    assert "not delivered" in log_text and "webhook ***" in log_text
    out, err = capfd.readouterr()
    assert CANARY not in log_text + out + err


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (
            'url = "http://127.0.0.1:9/x"\nurl_env = "QA_HOOK_URL"\n',
            "give url, or url_env or url_file, not two",
        ),
        ("", "a webhook needs url, url_env or url_file"),
        ('url_env = "QA_HOOK_URL"\n', "the URL in QA_HOOK_URL is not an http:// or https:// URL"),
    ],
)
def test_a_webhook_url_from_the_environment_is_checked_without_quoting_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    route: str,
    message: str,
) -> None:
    monkeypatch.setenv("QA_HOOK_URL", f"ftp://example.org/{CANARY}")
    rules = write_rules(tmp_path, '[[routes]]\nkind = "webhook"\n' + route)
    append(tmp_path / "j.sqlite", [trip(now_ns())])
    # a verb that sends (alerts check) reads the URL; list / silence / ack need none of it
    assert main(["alerts", "check", str(tmp_path / "j.sqlite"), "--rules", str(rules)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert message in out and CANARY not in out and "internal error" not in out


def test_secrets_canary_never_reaches_a_log_line_the_console_or_the_state(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every route fails in a way that tends to quote the secret (a server echoing the URL with
    the bot token, a refused SMTP login): the canary must appear nowhere."""
    hostile = HttpSink(status=400, answer={"ok": False}, echo_path=True).start()
    wrong_password = MailSink(password="the-right-one")
    controller = start_smtp(wrong_password)
    try:
        monkeypatch.setenv("TAPE_TEST_SMTP_PASSWORD", CANARY)
        monkeypatch.setenv("TAPE_TEST_BOT_TOKEN", CANARY)
        routes = (
            f'[[routes]]\nkind = "telegram"\nbase_url = "{hostile.url}"\nchat_id = "1"\n'
            'token_env = "TAPE_TEST_BOT_TOKEN"\n\n'
            f'[[routes]]\nname = "hook"\nkind = "webhook"\nurl = "{hostile.url}/x"\n'
            'token_env = "TAPE_TEST_BOT_TOKEN"\n\n' + smtp_route(wrong_password)
        )
        journal = tmp_path / "j.sqlite"
        append(journal, [trip(now_ns())])
        rules = write_rules(tmp_path, routes, 'log = "alerts.jsonl"\n')
        assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 1
    finally:
        hostile.stop()
        controller.stop()
    assert any(CANARY in path for path, _, _ in hostile.requests)  # the servers did get it
    log_text = (tmp_path / "alerts.jsonl").read_text()
    assert log_text.count("not delivered") == 3
    assert "***" in log_text  # the echoed URL was redacted, not dropped
    out, err = capfd.readouterr()
    with sqlite3.connect(tmp_path / "alerts.state.sqlite") as db:
        errors = " ".join(row[0] for row in db.execute("SELECT error FROM deliveries"))
    assert "HTTP 400" in errors
    for text in (log_text, out, err, errors):
        assert CANARY not in text
        assert "canary-S3cr3t%3ATok%2Fen%2B42" not in text


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (
            '[[routes]]\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\ntoken = "abcd1234"\n',
            "must not be written",
        ),
        ('[[routes]]\nkind = "telegram"\nchat_id = "1"\ntoken_file = "TOKENFILE"\n', "readable by you only"),
        ('[[routes]]\nkind = "telegram"\nchat_id = "1"\ntoken_env = "TAPE_TEST_UNSET_VAR"\n', "is not set"),
        ('[[routes]]\nkind = "webhook"\nurl = "file:///etc/passwd"\n', "http:// or https://"),
    ],
)
def test_secrets_in_the_rules_file_or_readable_files_are_refused(
    tmp_path: Path, route: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("abcd1234")
    token_file.chmod(0o644)
    journal = tmp_path / "j.sqlite"
    append(journal, [trip(now_ns())])
    rules = write_rules(tmp_path, route.replace("TOKENFILE", str(token_file)))
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 2
    assert message in " ".join(capsys.readouterr().out.split())


def _follow(journal: Path, rules: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TAPE_TEST_SMTP_PASSWORD": CANARY}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "alerts",
            "follow",
            str(journal),
            "--rules",
            str(rules),
            "--poll-s",
            "0.05",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 143  # terminated, as every verb (docs/runbook.md)


def test_follow_process_restarted_keeps_its_deduplication(tmp_path: Path, mail: MailSink) -> None:
    journal = tmp_path / "journal"  # LMDB: a writer here, the follower reading as it grows
    append(
        journal,
        [
            OrderSubmitted(
                ts_ns=now_ns(),
                order_id="o1",
                strategy_id="s",
                instrument_id=1,
                side=1,
                order_type="market",
                qty_raw=1,
                limit_px_raw=0,
                decision_px_raw=1,
            )
        ],
    )
    rules = write_rules(tmp_path, smtp_route(mail), 'log = "follow.jsonl"\n')
    follower = _follow(journal, rules)
    try:
        append(journal, [trip(now_ns())])
        assert len(mail.wait_for(1, timeout_s=30)) == 1
    finally:
        _stop(follower)
    append(journal, [trip(now_ns())])  # appended while it was down: the same firing alert
    follower = _follow(journal, rules)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until the restarted follower caught up
            with sqlite3.connect(tmp_path / "alerts.state.sqlite") as db:
                checkpoint = int(db.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()[0])
            if checkpoint == 2:
                break
            time.sleep(0.05)
        assert checkpoint == 2
        assert len(mail.messages) == 1
        append(journal, [KillSwitchRearmed(ts_ns=now_ns(), operator="me"), trip(now_ns())])
        subjects = [m.message["Subject"] for m in mail.wait_for(3, timeout_s=30)]
    finally:
        _stop(follower)
    assert subjects == [
        "[tape CRITICAL] FIRING: kill_switch book",
        "[tape CRITICAL] RESOLVED: kill_switch book",
        "[tape CRITICAL] FIRING: kill_switch book",
    ]


def test_check_refuses_a_path_that_is_no_journal(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, "")
    (tmp_path / "notes.txt").write_text("not a journal")
    assert main(["alerts", "check", str(tmp_path / "missing"), "--rules", str(rules)]) == 2
    assert main(["alerts", "check", str(tmp_path / "notes.txt"), "--rules", str(rules)]) == 2


def test_follow_closes_the_journal_it_opens_every_poll(tmp_path: Path) -> None:
    """A follower polls for days: every journal it opens must be closed again (no fd leak)."""
    from cli.alerts_cmd import AlertsService, load_alerts_config
    from cli.logs import Redactor

    journal = tmp_path / "journal"
    append(journal, [trip(now_ns())])
    service = AlertsService(load_alerts_config(write_rules(tmp_path, ""), Redactor()), journal)
    try:
        service.cycle()
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(50):
            service.cycle()
        assert len(os.listdir("/proc/self/fd")) <= before
    finally:
        service.close()


def _checkpoint(state: Path) -> int:
    if not state.exists():
        return -2
    try:
        with sqlite3.connect(state) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    except sqlite3.OperationalError:  # the follower is creating it
        return -2
    return -2 if row is None else int(row[0])


def _until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_follower_takes_journaled_silences_and_acks_from_other_processes_across_restarts(
    tmp_path: Path, mail: MailSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Silence, unsilence and ack are journaled by their own processes (the alerts journal beside
    the state) while a real ``alerts follow`` runs; it folds them, and a restarted follower
    keeps the silence and its de-duplication."""
    monkeypatch.setenv("TAPE_TEST_SMTP_PASSWORD", CANARY)
    journal = tmp_path / "journal"
    append(journal, [trip(now_ns()), KillSwitchRearmed(ts_ns=now_ns(), operator="me")])
    rules = write_rules(tmp_path, smtp_route(mail), 'log = "follow.jsonl"\n')
    state = tmp_path / "alerts.state.sqlite"
    follower = _follow(journal, rules)
    try:
        _until(lambda: _checkpoint(state) == 1)
        # alert 1 fired and cleared in one batch: told all the same, fire then resolve
        assert [m.message["Subject"] for m in mail.wait_for(2, timeout_s=30)] == [
            "[tape CRITICAL] FIRING: kill_switch book",
            "[tape CRITICAL] RESOLVED: kill_switch book",
        ]
        silence = ["alerts", "silence", "kill_switch", "--for", "1h", "--by", "ana", "--rules", str(rules)]
        assert main(silence) == 0
        append(journal, [trip(now_ns())])
        _until(lambda: _checkpoint(state) == 2)
    finally:
        _stop(follower)
    follower = _follow(journal, rules)  # restarted: the silence is folded from the alerts journal
    try:
        log = tmp_path / "follow.jsonl"
        _until(lambda: log.read_text().count('"following ') == 2, timeout_s=60)
        time.sleep(1.0)
        assert len(mail.messages) == 2  # alert 2 held back by the silence
        assert main(["alerts", "unsilence", "1", "--by", "bo", "--rules", str(rules)]) == 0
        sent = mail.wait_for(3, timeout_s=30)[2]  # alert 2, still firing when its silence ended
        assert sent.message["Subject"] == "[tape CRITICAL] FIRING: kill_switch book"
        assert main(["alerts", "ack", "2", "--by", "me", "--rules", str(rules)]) == 0
    finally:
        _stop(follower)
    from domain.events import AlertAcknowledged, AlertSilenced, AlertUnsilenced

    with open_journal(tmp_path / "alerts.state.journal.sqlite") as alerts_journal:
        assert alerts_journal.verify().ok
        events = [record.event() for record in alerts_journal.records()]
    assert [(type(e), e.operator) for e in events] == [
        (AlertSilenced, "ana"),
        (AlertUnsilenced, "bo"),
        (AlertAcknowledged, "me"),
    ]
    assert isinstance(events[2], AlertAcknowledged) and (events[2].alert_id, events[2].fired_seq) == (2, 2)
    logged = (tmp_path / "follow.jsonl").read_text()
    assert '"level": "error"' not in logged  # never read a journal half made, nor a state mid-write
    assert len(mail.messages) == 3


def test_silence_refuses_an_unknown_rule_and_a_duration_out_of_range_journaling_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "j.sqlite"
    append(journal, [trip(now_ns())])
    rules = write_rules(tmp_path, "")
    assert main(["alerts", "check", str(journal), "--rules", str(rules), "--no-send"]) == 1
    capsys.readouterr()
    for verb, message in [
        (["nosuchrule", "--for", "2h"], "defines no rule 'nosuchrule' (rules: kill_switch)"),
        (["kill_switch", "--for", "99999d"], "at most 366d"),
        (["kill_switch", "--for", "0s"], "more than 0 s"),
    ]:
        assert main(["alerts", "silence", *verb, "--rules", str(rules)]) == 2
        out = capsys.readouterr().out
        assert message in " ".join(out.split()) and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "alerts.state.journal.sqlite").exists()  # nothing journaled
    assert main(["alerts", "silence", "kill_switch", "--for", "366d", "--rules", str(rules)]) == 0


def test_a_silence_journaled_past_sqlites_integers_leaves_the_state_readable(tmp_path: Path) -> None:
    """An alerts journal that already holds a silence ending past 2**63 - 1 ns (written before
    --for was bounded) is folded as a silence to the end of SQLite's time, not an OverflowError."""
    from domain.events import AlertSilenced

    journal = tmp_path / "j.sqlite"
    append(journal, [trip(now_ns())])
    rules = write_rules(tmp_path, "")
    assert main(["alerts", "check", str(journal), "--rules", str(rules), "--no-send"]) == 1
    huge = AlertSilenced(
        ts_ns=now_ns(), silence_id=1, rule="kill_switch", key="", until_ns=2**64 - 1, reason="", operator="qa"
    )
    with open_journal(tmp_path / "alerts.state.journal.sqlite", writable=True) as writer:
        writer.append(huge)
    for verb in (["list", "--all"], ["check", str(journal), "--no-send"], ["unsilence", "1"]):
        assert main(["alerts", *verb, "--rules", str(rules)]) in (0, 1), verb


@pytest.mark.parametrize(
    ("stop", "status", "line"), [(signal.SIGINT, 130, "interrupted:"), (signal.SIGTERM, 143, "terminated:")]
)
def test_follow_stopped_by_a_signal_says_so_and_exits_130_or_143(
    tmp_path: Path, stop: signal.Signals, status: int, line: str
) -> None:
    journal = tmp_path / "journal"
    append(journal, [trip(now_ns())])
    rules = write_rules(tmp_path, "", 'log = "follow.jsonl"\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "alerts", "follow", str(journal), "--rules", str(rules)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    _until(lambda: _checkpoint(tmp_path / "alerts.state.sqlite") == 0, timeout_s=60)
    process.send_signal(stop)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == status, output
    assert line in output and "Traceback" not in output
    assert "stopped: 0 notifications sent" in (tmp_path / "follow.jsonl").read_text()  # at a clean point


@pytest.mark.parametrize(("flag", "setting"), [("-3", ""), ("0", ""), ("1e9", ""), ("", "poll_s = -1\n")])
def test_follow_refuses_a_poll_interval_that_would_spin_or_sleep_for_ever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, setting: str
) -> None:
    journal = tmp_path / "journal"
    append(journal, [trip(now_ns())])
    rules = write_rules(tmp_path, "", setting)
    poll = ["--poll-s", flag] if flag else []
    assert main(["alerts", "follow", str(journal), "--rules", str(rules), *poll]) == 2
    assert "give seconds between 0.01 and 3600" in capsys.readouterr().out
    assert not (tmp_path / "alerts.state.sqlite").exists()


def test_a_missing_or_unreadable_job_log_fires_failed_jobs_until_it_can_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unattended, a job log that is missing (no scheduler ran, job_log points elsewhere) or not
    a job log hides every failed job: the failed_jobs rule fires for it (key ``job log PATH``)."""
    from cli.alerts_cmd import firing_alerts
    from cli.scheduler import JobLog, JobRun

    journal = tmp_path / "journal"
    append(journal, [KillSwitchRearmed(ts_ns=now_ns(), operator="me")])
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rules]]\nkind = "failed_jobs"\n')
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 2  # job_log not set
    assert "set job_log" in capsys.readouterr().out
    rules.write_text('job_log = "jobs.sqlite"\n\n[[rules]]\nkind = "failed_jobs"\n')
    check = ["alerts", "check", str(journal), "--rules", str(rules), "--no-send"]
    assert main(check) == 1
    (alert,) = firing_alerts(rules)
    assert (
        alert.key == f"job log {tmp_path / 'jobs.sqlite'}" and "cannot be read (no such file" in alert.message
    )
    assert not (tmp_path / "jobs.sqlite").exists()  # reported, not created
    (tmp_path / "jobs.sqlite").write_text("not a job log")
    assert main(check) == 1
    (tmp_path / "jobs.sqlite").unlink()
    with JobLog(tmp_path / "jobs.sqlite") as job_log:
        job_log.record(JobRun(0, 1, "eod", 1, 1, "manual", 0, 0, 1, 0.0, "ok", 0, ""))
    assert main(check) == 0  # readable again: resolved


def test_alerts_list_at_80_columns_never_splits_a_number(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    reason = "NAV 1,075,906.12 USD below peak 1,234,567.89 USD by 12.85% of 1,234,567.89 USD"
    tripped = KillSwitchTripped(
        ts_ns=now_ns(), trigger="drawdown", flatten=True, limit=1, observed=2, reason=reason
    )
    append(journal, [tripped])
    rules = write_rules(tmp_path, "")
    assert main(["alerts", "check", str(journal), "--rules", str(rules), "--no-send"]) == 1
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "alerts", "list", "--all", "--rules", str(rules)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), done.stdout
    words = done.stdout.split()
    for number in ("1,075,906.12", "1,234,567.89", "12.85%"):
        assert number in words, done.stdout


def _silenced_alert(tmp_path: Path) -> Path:
    """A firing kill_switch alert, acknowledged, and a silence with a long reason of numbers."""
    journal = tmp_path / "j.sqlite"
    append(journal, [trip(1_577_934_245 * 1_000_000_000)])  # 2020-01-02T03:04:05Z
    rules = write_rules(tmp_path, "")
    assert main(["alerts", "check", str(journal), "--rules", str(rules), "--no-send"]) == 1
    reason = "drill: NAV 1,075,906.12 USD below peak 1,234,567.89 USD by 12.85%, accepted by the desk"
    silence = [
        "alerts",
        "silence",
        "kill_switch",
        "--for",
        "2h",
        "--reason",
        reason,
        "--by",
        "operator-on-duty",
    ]
    assert main([*silence, "--rules", str(rules)]) == 0
    assert main(["alerts", "ack", "1", "--by", "me", "--rules", str(rules)]) == 0
    return rules


def test_alerts_list_silences_table_fits_80_columns_never_splitting_a_number(tmp_path: Path) -> None:
    """QA: the silences table was a plain table (a long reason made it wider or cut numbers)."""
    rules = _silenced_alert(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "alerts", "list", "--all", "--rules", str(rules)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}, check=True,
    )  # fmt: skip
    assert all(len(line) <= 80 for line in done.stdout.splitlines()), done.stdout
    silences = done.stdout[done.stdout.index("silences in force") : done.stdout.index("alerts journal")]
    words = silences.split()
    for number in ("1,075,906.12", "1,234,567.89", "12.85%,", "operator-on-duty"):
        assert number in words, silences


def test_alerts_list_json_and_csv_hold_every_table_alone_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: ``alerts list`` had no --json / --csv. ``-`` puts the data alone on stdout (no table)."""
    rules = _silenced_alert(tmp_path)
    capsys.readouterr()
    assert main(["alerts", "list", "--all", "--json", "-", "--rules", str(rules)]) == 0
    document = json.loads(capsys.readouterr().out)
    (alert,) = document["alerts"]
    assert (alert["id"], alert["rule"], alert["status"], alert["acked_by"]) == (
        1,
        "kill_switch",
        "firing",
        "me",
    )
    assert (alert["fired"], alert["fired_seq"]) == ("2020-01-02T03:04:05Z", 0)
    (silence,) = document["silences"]
    assert (silence["rule"], silence["key"], silence["by"]) == ("kill_switch", "", "operator-on-duty")
    assert silence["reason"].startswith("drill: NAV 1,075,906.12 USD")
    assert [op["kind"] for op in document["operations"]] == ["silence", "ack"]
    assert main(["alerts", "list", "--csv", "-", "--rules", str(rules)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["table"], r["id"], r["rule"], r["by"]) for r in rows] == [
        ("alert", "1", "kill_switch", "me"),
        ("silence", "1", "kill_switch", "operator-on-duty"),
    ]
    assert rows[1]["text"] == silence["reason"]
    out = tmp_path / "out" / "list.json"
    assert main(["alerts", "list", "--json", str(out), "--rules", str(rules)]) == 0
    assert "silences in force" in capsys.readouterr().out  # a file: the tables are printed too
    assert "operations" not in json.loads(out.read_text())  # only with --all


def test_check_delivers_an_alert_that_fired_and_resolved_in_one_batch_fire_then_resolve(
    tmp_path: Path, mail: MailSink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: over a freshly written journal, every alert had fired and cleared before the first
    evaluation, and none was sent ("33 fired, 0 sent"). Each is told, fire then resolve, and
    the summary accounts for every one; a second check sends nothing again."""
    monkeypatch.setenv("TAPE_TEST_SMTP_PASSWORD", CANARY)
    monkeypatch.setenv("COLUMNS", "200")
    journal = tmp_path / "j.sqlite"
    t = now_ns()
    append(
        journal,
        [
            trip(t),
            KillSwitchRearmed(ts_ns=t + 1, operator="me"),
            trip(t + 2),
            KillSwitchRearmed(ts_ns=t + 3, operator="me"),
        ],
    )
    rules = write_rules(tmp_path, smtp_route(mail), 'log = "alerts.jsonl"\n')
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 0  # nothing firing now
    summary = " ".join(capsys.readouterr().out.split())
    assert "2 fired, 2 resolved; 4 notifications sent (2 fire, 2 resolve), 0 failed" in summary
    messages = mail.wait_for(4)
    assert [m.message["Subject"].split(":")[0] for m in messages] == [
        "[tape CRITICAL] FIRING",
        "[tape CRITICAL] RESOLVED",
        "[tape CRITICAL] FIRING",
        "[tape CRITICAL] RESOLVED",
    ]
    body = messages[0].message.get_payload()
    assert "since resolved: kill switch rearmed by me (seq 1)" in body  # a FIRING told late says so
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 0
    assert "0 notifications sent, 0 failed" in " ".join(capsys.readouterr().out.split())
    time.sleep(0.3)
    assert len(mail.messages) == 4
    with sqlite3.connect(tmp_path / "alerts.state.sqlite") as db:
        assert db.execute("SELECT alert_id, note FROM settled ORDER BY alert_id").fetchall() == [
            (1, "smtp: sent"),
            (2, "smtp: sent"),
        ]


def test_check_accounts_for_alerts_held_back_by_a_silence_and_below_every_route(
    tmp_path: Path, http: HttpSink, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is dropped without a reason: an alert that resolved under a silence and one no
    route takes are counted in the summary (and the silenced one logged with its silence)."""
    monkeypatch.setenv("COLUMNS", "200")
    journal = tmp_path / "j.sqlite"
    t = now_ns()
    append(journal, [KillSwitchRearmed(ts_ns=t, operator="me")])  # nothing fires
    route = f'[[routes]]\nkind = "webhook"\nurl = "{http.url}/hook"\n'
    rules = write_rules(tmp_path, route, 'log = "alerts.jsonl"\n')
    (tmp_path / "alerts.toml").write_text(
        rules.read_text().replace(
            RULES, RULES + '[[rules]]\nkind = "staleness"\nmax_age_s = 1\nseverity = "info"\n\n'
        )
    )
    assert main(["alerts", "check", str(journal), "--rules", str(rules), "--no-send"]) == 0  # state made
    assert "--no-send: nothing delivered" in capsys.readouterr().out
    assert (
        main(["alerts", "silence", "kill_switch", "--for", "1h", "--reason", "drill", "--rules", str(rules)])
        == 0
    )
    append(journal, [trip(t + 1), KillSwitchRearmed(ts_ns=t + 2, operator="me")])  # under the silence
    time.sleep(1.2)  # the journal goes stale: an info alert, below the webhook's warning
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 1
    summary = " ".join(capsys.readouterr().out.split())
    assert "0 notifications sent, 0 failed; 1 held back by silences (1 resolved while silenced); " in summary
    assert "1 alert below every route's min_severity" in summary
    assert http.requests == []
    log_text = (tmp_path / "alerts.jsonl").read_text()
    assert "alert 1 not sent to webhook: it resolved while silence 1 (drill) held it back" in log_text


def test_alerts_list_fired_column_is_the_time_of_the_journal_event_not_of_the_check(tmp_path: Path) -> None:
    """Replaying an old journal shows when things happened: the trip's event time (2020), not
    the wall clock when ``alerts check`` ran."""
    journal = tmp_path / "j.sqlite"
    tripped_at = 1_577_934_245 * 1_000_000_000  # 2020-01-02T03:04:05Z
    append(journal, [trip(tripped_at)])
    rules = write_rules(tmp_path, "")
    assert main(["alerts", "check", str(journal), "--rules", str(rules), "--no-send"]) == 1
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "alerts", "list", "--all", "--rules", str(rules)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, check=True,
    )  # fmt: skip
    (row,) = [line for line in done.stdout.splitlines() if "kill_switch" in line]
    assert "2020-01-02T03:04:05Z" in row.split(), done.stdout


def test_an_alert_route_secret_too_short_to_redact_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_WEBHOOK_TOKEN", "abc")
    rules = tmp_path / "alerts.toml"
    rules.write_text(
        '[[rules]]\nkind = "kill_switch"\n\n'
        '[[routes]]\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\ntoken_env = "QA_WEBHOOK_TOKEN"\n'
    )
    append(tmp_path / "j.sqlite", [trip(now_ns())])
    # was exit 70: ValueError; a verb that sends reads the secret (list needs none)
    assert main(["alerts", "check", str(tmp_path / "j.sqlite"), "--rules", str(rules)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "QA_WEBHOOK_TOKEN is shorter than 4 characters" in out


def test_one_evaluator_per_state_a_second_follower_is_refused_and_check_shows_the_followers_alerts(
    tmp_path: Path, mail: MailSink, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two evaluators of one state each sent every notification (each read the outbox before
    the other recorded the send) and folded the journal from a checkpoint the other had moved
    with rule state it never saw. A second ``follow`` is refused; ``check`` beside a running
    follower shows the follower's firing alerts and neither evaluates nor sends."""
    monkeypatch.setenv("TAPE_TEST_SMTP_PASSWORD", CANARY)
    journal = tmp_path / "journal"
    append(journal, [trip(now_ns())])
    rules = write_rules(tmp_path, smtp_route(mail), 'log = "follow.jsonl"\n')
    state = tmp_path / "alerts.state.sqlite"
    follower = _follow(journal, rules)
    try:
        _until(lambda: _checkpoint(state) == 0, timeout_s=60)
        assert len(mail.wait_for(1, timeout_s=30)) == 1
        second = subprocess.run(
            [sys.executable, "-m", "cli.main", "alerts", "follow", str(journal), "--rules", str(rules)],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
            env={**os.environ, "TAPE_TEST_SMTP_PASSWORD": CANARY, "COLUMNS": "200"},
        )  # fmt: skip
        assert second.returncode == 2, second.stdout + second.stderr
        said = " ".join(second.stdout.split())
        assert f"tape alerts follow {rules} (pid {follower.pid}) already evaluates" in said
        assert "one follower per state" in said and "Traceback" not in second.stderr
        capsys.readouterr()
        assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 1  # still firing
        out = " ".join(capsys.readouterr().out.split())
        assert f"(pid {follower.pid}) evaluates" in out and "nothing evaluated or sent here" in out
        assert "kill_switch" in out
        append(journal, [KillSwitchRearmed(ts_ns=now_ns(), operator="me")])
        assert main(["alerts", "check", str(journal), "--rules", str(rules)]) in (0, 1)  # follower's pace
        _until(lambda: _checkpoint(state) == 1)
        assert main(["alerts", "check", str(journal), "--rules", str(rules), "--no-send"]) == 0
        subjects = [m.message["Subject"] for m in mail.wait_for(2, timeout_s=30)]
        time.sleep(1.0)  # a duplicate would arrive by now
    finally:
        _stop(follower)
    assert subjects == [
        "[tape CRITICAL] FIRING: kill_switch book",
        "[tape CRITICAL] RESOLVED: kill_switch book",
    ]
    assert len(mail.messages) == 2
    # the follower gone, check evaluates again (and delivers nothing new)
    assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 0
    assert "0 notifications sent" in " ".join(capsys.readouterr().out.split())


WEBHOOK = '[[routes]]\nkind = "webhook"\nurl = "http://127.0.0.1:9/tape"\n'


@pytest.mark.parametrize(
    ("settings", "routes", "message"),
    [
        # each of these was an internal error (exit 70) or quietly taken as something else
        ('repeat_s = "30m"\n', "", "repeat_s must be a number of seconds, 0 or more, got '30m'"),
        ("retry_s = -5\n", "", "retry_s must be a number of seconds, 0 or more, got -5"),
        ("repeat_s = nan\n", "", "repeat_s must be a number of seconds, 0 or more, got nan"),
        ('notify_resolved = "no"\n', "", "notify_resolved must be true or false, got 'no'"),
        ("state = 7\n", "", "state must be a path (a text), got 7"),
        ("log = false\n", "", "log must be a path (a text), got False"),
        ("", WEBHOOK + 'timeout_s = "x"\n', "route webhook: timeout_s must be a number of seconds above 0"),
        ("", WEBHOOK + "timeout_s = 0\n", "route webhook: timeout_s must be a number of seconds above 0"),
        ("", WEBHOOK + 'min_severty = "critical"\n', "route webhook: unknown keys ['min_severty']"),
        (
            "",
            '[[routes]]\nkind = "smtp"\nhost = "h"\nsender = "a@b"\nto = ["c@d"]\nport = "25"\n',
            "route smtp: port must be a whole number 1..65535, got '25'",
        ),
        (
            "",
            '[[routes]]\nkind = "smtp"\nhost = "h"\nsender = "a@b"\nto = ["c@d"]\nusername = 5\n',
            "route smtp: username must be a text, got 5",
        ),
        (
            "",
            '[[routes]]\nkind = "smtp"\nhost = "h"\nsender = "a@b"\nto = ["c@d"]\npasword_env = "P"\n',
            "route smtp: unknown keys ['pasword_env']",
        ),
        (
            "",
            '[[routes]]\nkind = "webhook"\nurl = "http://bob:pw-S3cret@127.0.0.1:9/x"\n',
            "route webhook: no user or password in the URL (http://bob:***@127.0.0.1:9/x)",
        ),
    ],
)
def test_a_mistyped_setting_or_route_key_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: str, routes: str, message: str
) -> None:
    journal = tmp_path / "j.sqlite"
    append(journal, [trip(now_ns())])
    rules = write_rules(tmp_path, routes, settings)
    assert main(["alerts", "check", str(journal), "--rules", str(rules), "--no-send"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert message in out and "internal error" not in out and "S3cret" not in out
    assert not (tmp_path / "alerts.state.sqlite").exists()


def test_a_webhook_that_answers_something_other_than_http_is_a_failed_delivery_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """http.client's BadStatusLine is no OSError: a receiver answering garbage (a wrong port,
    a proxy's banner) ended alerts check / follow with an internal error (exit 70)."""
    import socketserver
    import threading

    class Garbage(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            self.wfile.write(b"HELLO THIS IS NOT HTTP\r\n\r\n")

    server = socketserver.TCPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        journal = tmp_path / "j.sqlite"
        append(journal, [trip(now_ns())])
        rules = write_rules(tmp_path, WEBHOOK.replace("9/tape", f"{port}/tape"), 'log = "alerts.jsonl"\n')
        assert main(["alerts", "check", str(journal), "--rules", str(rules)]) == 1
    finally:
        server.shutdown()
        server.server_close()
    out = " ".join(capsys.readouterr().out.split())
    assert "0 notifications sent, 1 failed" in out
    assert (
        "not an HTTP answer (BadStatusLine: HELLO THIS IS NOT HTTP)"
        in (tmp_path / "alerts.jsonl").read_text()
    )
