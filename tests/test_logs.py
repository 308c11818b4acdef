"""Logging: formats, levels, UTC times, and addresses kept out of the log by default."""

from __future__ import annotations

import json
import logging
import re
import smtplib

from mailbot import config as config_module
from mailbot import logs
from mailbot.cli import main
from tests.daemon_helpers import DaemonProcess, daemon_settings, wait_until
from tests.helpers import make_mail, write_config

# Outlook 365 web: its Message-ID shape, Thread-Index and the customer's address in From.
OUTLOOK_ID = "<AM9PR02MB7345C1F8E0D6B0A3E1C2D4F5A6B7C8D9@AM9PR02MB7345.eurprd02.prod.outlook.com>"
OUTLOOK_HEADERS = {"Thread-Index": "AQHZ8k3xYzABCDEFGhIjKlMnOpQrSt==", "X-MS-Has-Attach": ""}
CUSTOMER = "magdalena.wisniewska@klient-logistyka.pl"


def test_default_logs_show_only_the_domain_of_every_address(tmp_path, smtp_sink) -> None:
    proc = DaemonProcess(write_config(tmp_path, settings=daemon_settings(smtp_sink))).start()
    try:
        raw = make_mail(
            sender=f"Magdalena Wiśniewska <{CUSTOMER}>",
            message_id=OUTLOOK_ID,
            headers=OUTLOOK_HEADERS,
        )
        with smtplib.SMTP(proc.cfg.smtp.host, proc.cfg.smtp.port, timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail(CUSTOMER)
            assert smtp.rcpt("jan.nowak@4dustry.com")[0] == 550  # logged: recipient refused
            smtp.rset()
            smtp.sendmail(CUSTOMER, ["pomoc@4dustry.com"], raw)
        wait_until(lambda: "msg=sent" in proc.log(), 10)
    finally:
        proc.stop()
    log = proc.log()
    assert CUSTOMER not in log.lower() and "jan.nowak@4dustry.com" not in log
    sent = next(line for line in log.splitlines() if "msg=sent" in line and "klient" in line)
    assert "to=***@klient-logistyka.pl" in sent and "ticket=1" in sent
    refused = next(line for line in log.splitlines() if "recipient refused" in line)
    assert "rcpt=***@4dustry.com" in refused
    # Message-IDs look like addresses but are kept whole: they name messages, not people.
    processed = next(line for line in log.splitlines() if "msg=processed" in line)
    assert f"message_id={OUTLOOK_ID}" in processed
    # UTC throughout, with milliseconds.
    assert all(
        re.match(r"time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", x) for x in log.splitlines()
    )


def _emit(capsys, cfg_path, *addresses: str) -> list[dict]:
    logs.setup(config_module.load(cfg_path), stream="stderr")
    log = logging.getLogger("mailbot.outbox")
    for address in addresses:
        log.info("sent", extra={"to": address, "message_id": "<mb.1.ack.x@4dustry.com>"})
    log.debug("not written at info")
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_hashed_addresses_follow_one_customer_and_depend_on_the_install(
    tmp_path, capsys, restore_logging
) -> None:
    settings = {"logging.addresses": '"hash"', "logging.format": '"json"'}
    first_install, second_install = tmp_path / "a", tmp_path / "b"
    first_install.mkdir()
    second_install.mkdir()
    one = _emit(capsys, write_config(first_install, settings=settings), CUSTOMER, CUSTOMER.upper(),
                "ola@klient-logistyka.pl")  # fmt: skip
    again = _emit(capsys, write_config(first_install, settings=settings), CUSTOMER)
    other = _emit(capsys, write_config(second_install, settings=settings), CUSTOMER)
    assert len(one) == 3  # JSON lines; the debug line is below the level
    first, upper, ola = (entry["to"] for entry in one)
    assert re.fullmatch(r"#[0-9a-f]{10}@klient-logistyka\.pl", first)
    assert first == upper == again[0]["to"]  # the same customer on every line and every run
    assert ola != first
    assert other[0]["to"] != first  # keyed with the install's secret: not a plain hash
    assert one[0]["message_id"] == "<mb.1.ack.x@4dustry.com>" and one[0]["level"] == "info"
    assert CUSTOMER not in json.dumps(one + again + other)


def test_full_addresses_when_configured_and_level_filters(
    tmp_path, capsys, restore_logging
) -> None:
    path = write_config(
        tmp_path, settings={"logging.addresses": '"full"', "logging.level": '"warning"'}
    )
    logs.setup(config_module.load(path), stream="stderr")
    logging.getLogger("mailbot.outbox").info("sent", extra={"to": CUSTOMER})
    logging.getLogger("mailbot.outbox").warning("delivery deferred", extra={"to": CUSTOMER})
    [line] = capsys.readouterr().err.splitlines()
    assert 'msg="delivery deferred"' in line and f"to={CUSTOMER}" in line


def test_cli_commands_log_the_same_way_to_stderr(tmp_path, capsys, restore_logging) -> None:
    path = write_config(tmp_path, settings={"logging.format": '"json"'})
    eml = tmp_path / "mail.eml"
    eml.write_bytes(
        make_mail(sender=f"<{CUSTOMER}>", message_id=OUTLOOK_ID, headers=OUTLOOK_HEADERS)
    )
    assert main(["--config", str(path), "import", str(eml)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("imported 1 new")  # the command's output stays clean
    entries = [json.loads(line) for line in captured.err.splitlines()]
    processed = next(e for e in entries if e["msg"] == "processed")
    assert processed["message_id"] == OUTLOOK_ID and processed["ticket"] == 1
    assert CUSTOMER not in captured.err
