"""Failure mail as Luigi sends it ([email] and [smtp] in the override file), received by a real SMTP server on
127.0.0.1 (aiosmtpd): one mail per failed step, naming the service, month and step with the error, and never a
password, decoded (Luigi's bodies are base64); and scripts/cron-run --quiet still prints nothing unless it failed."""

from __future__ import annotations

import email
import email.policy
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest
from emulators import free_port
from postgres_server import PASSWORD
from test_cron import cron_run, finish, write_config

from taxi_luigi.demo import sample

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RECEIVER = "data-team@example.test"

pytestmark = pytest.mark.slow


@dataclass
class Mail:
    subject: str
    body: str  # decoded
    raw: str  # the whole message as it went over the wire

    def __str__(self) -> str:
        return f"{self.subject}\n{self.body}"


@dataclass
class Inbox:
    """A real SMTP server on loopback; every message it accepts, parsed."""

    port: int
    mails: list[Mail] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        body = "".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")
        self.mails.append(Mail(str(message["Subject"]), body, envelope.original_content.decode("latin-1")))
        return "250 OK"

    def config(self, **email_keys: str) -> str:
        """The sections that turn Luigi's failure mail on (README: "Failure mail")."""
        keys = {"receiver": RECEIVER, "sender": "taxi-luigi@example.test", "method": "smtp", **email_keys}
        return (
            "[email]\n"
            + "".join(f"{k} = {v}\n" for k, v in keys.items())
            + f"[smtp]\nhost = 127.0.0.1\nport = {self.port}\n"
        )


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    box = Inbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def luigi_config(tmp_path: Path, template: str, warehouse: str, extra: str) -> Path:
    data = tmp_path / "data"
    cfg = tmp_path / "override.cfg"
    cfg.write_text(
        f"[core]\nlock_pid_dir = {tmp_path / 'pids'}\n"
        f"[source]\nurl_template = {template}\nretries = 1\nbackoff_seconds = 0.05\ntimeout_seconds = 20\n"
        f"[paths]\ndata_dir = {data}\n[lake]\nroot = {data / 'lake'}\n[warehouse]\nurl = {warehouse}\n{extra}"
    )
    return cfg


def card(cfg: Path, *args: str, stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "luigi"), "--module", "taxi_luigi", *args],
        cwd=REPO,
        env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )


def test_a_failed_load_mails_once_with_the_month_the_step_and_the_error_and_no_password(
    mirror, tmp_path, pg_database, password_warehouse, inbox
):
    """A PostgreSQL warehouse that takes the password (from the URL, or PGPASSWORD) and then refuses the month:
    its table was made by hand without partitions, so the swap fails inside the transaction."""
    sample.write_mirror(mirror.root, ["green"], 2023, [1], "tlc", 300)
    with psycopg2.connect(password_warehouse.replace("+psycopg2", "")) as con, con.cursor() as cur:
        cur.execute("CREATE TABLE green_tripdata (source_month date)")  # not partitioned by month
    cfg = luigi_config(tmp_path, mirror.template(), password_warehouse, inbox.config())

    run = card(cfg, "TaxiYear", "--service", "green", "--year", "2023", "--months", "1")

    assert run.returncode == 30, run.stderr[-3000:]  # [retcode] task_failed
    (mail,) = inbox.mails
    print("MAILRAW", mail.raw[:1500], "MAILDECODED", str(mail))
    assert mail.subject.startswith("Luigi: Load(service=green, month=2023-01) FAILED. Host: ")
    assert "green 2023-01: loading into postgresql+psycopg2://taxi" in mail.body
    assert "failed and nothing was committed" in mail.body and "is not partitioned" in mail.body
    assert "Name: Load" in mail.body and "service: green" in mail.body and "month  : 2023-01" in mail.body
    assert "base64" in mail.raw  # what went over the wire is encoded: the checks below are on both forms
    assert PASSWORD not in mail.raw and PASSWORD not in str(mail)
    assert PASSWORD not in run.stdout + run.stderr


def test_mail_is_skipped_on_a_terminal_unless_force_send(mirror, tmp_path, inbox):
    """Luigi's rule (luigi/notifications.py): no mail while stdout is a tty, unless [email] force_send."""
    sample.write_mirror(mirror.root, ["yellow"], 2023, [1], "tlc", 100)
    (mirror.root / "yellow" / "yellow_tripdata_2023-01.parquet").unlink()  # the Download fails: a 404
    task = ("Download", "--service", "yellow", "--month", "2023-01")
    sent = []
    for force in ("false", "true"):
        cfg = luigi_config(
            tmp_path, mirror.template(), f"duckdb:///{tmp_path / 'wh.duckdb'}", inbox.config(force_send=force)
        )
        terminal, other_end = pty.openpty()
        try:
            run = card(cfg, *task, stdout=other_end)
        finally:
            os.close(other_end)
            os.close(terminal)
        assert run.returncode == 30
        sent.append(len(inbox.mails))
        if force == "false":
            assert "Not sending email to ['data-team@example.test'] because running from a tty" in run.stderr

    assert sent == [0, 1]
    assert inbox.mails[0].subject.startswith("Luigi: Download(service=yellow, month=2023-01) FAILED")
    assert "yellow_tripdata_2023-01.parquet" in inbox.mails[0].body


def test_cron_run_mails_a_failed_month_once_and_stays_quiet_when_all_is_well(mirror, tmp_path, inbox):
    sample.write_mirror(mirror.root, ["yellow"], 2023, [1, 2, 3], "tlc", 300)
    feb = mirror.root / "yellow" / "yellow_tripdata_2023-02.parquet"
    held = feb.rename(feb.with_suffix(".held"))  # a hole before the newest month: February fails
    cfg = write_config(tmp_path, mirror.template(), services="yellow")
    cfg.write_text(cfg.read_text() + inbox.config())

    rc, out, err = finish(cron_run(cfg, "--quiet"))

    assert (rc, out) == (30, "")
    assert "FAILED, exit code 30 (task_failed)" in err and "yellow 2023-02" in err
    (mail,) = inbox.mails
    assert mail.subject.startswith("Luigi: Download(service=yellow, month=2023-02) FAILED")
    assert "yellow 2023-02" in mail.body and "yellow_tripdata_2023-02.parquet" in mail.body
    site = (tmp_path / "data" / "report" / "yellow.html").read_text()  # refreshed after the failure too
    assert '<tr data-month="2023-02"><td class="month">2023-02</td><td class="state missing">' in site

    held.rename(feb)  # the source has the file now
    rc, out, err = finish(cron_run(cfg, "--quiet"))

    assert (rc, out, err) == (0, "", "")  # the contract: nothing printed, so cron mails nothing
    assert len(inbox.mails) == 1  # and Luigi mails only failures
    site = (tmp_path / "data" / "report" / "yellow.html").read_text()
    assert '<td class="state missing">' not in site
