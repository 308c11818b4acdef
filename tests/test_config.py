"""config.toml: the shipped file loads, every key is documented, and every problem is reported."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from mailbot import config as config_module
from mailbot.cli import main
from mailbot.config import SCHEMA, TABLE_ARRAYS, ConfigError
from mailbot.templates import TEMPLATE_NAMES, missing_templates
from tests.helpers import ROOT, write_config


def test_shipped_config_loads_with_embedded_defaults() -> None:
    cfg = config_module.load(ROOT / "config.toml")
    assert cfg.mailbot.address == "pomoc@4dustry.com"
    assert (cfg.smtp.host, cfg.smtp.port, cfg.smtp.enabled) == ("127.0.0.1", 2525, True)
    assert cfg.outbound.transport == "maildir"
    assert cfg.outbound.path == ROOT / "data" / "sent"
    assert cfg.imap.enabled is False
    assert cfg.smtp.max_message_size == 25_000_000


def uncommented_examples(text: str) -> str:
    """config.toml with its commented-out [[mailboxes]] example taken in, as an admin would."""
    start = text.index("# [[mailboxes]]")
    end = text.index("\n\n", start)
    example = re.sub(r"(?m)^# ?", "", text[start:end])
    return text[:start] + example + text[end:]


def test_every_config_key_is_in_the_shipped_file_with_a_comment() -> None:
    text = uncommented_examples((ROOT / "config.toml").read_text(encoding="utf-8"))
    sections = re.split(r"(?m)^\[+([\w.]+)\]+\s*$", text)
    blocks: dict[str, str] = {}
    for name, block in zip(sections[1::2], sections[2::2], strict=True):
        blocks[name] = blocks.get(name, "") + block
    for section, keys in (*SCHEMA.items(), *TABLE_ARRAYS.items()):
        assert section in blocks, f"[{section}] missing from config.toml"
        lines = blocks[section].splitlines()
        for key in keys:
            index = next((i for i, line in enumerate(lines) if line.startswith(f"{key} =")), None)
            assert index is not None, f"[{section}] {key} missing from config.toml"
            # Walk up over the keys documented together; a comment must head the group.
            above = index - 1
            while above >= 0 and re.match(r"^\w+ = ", lines[above]):
                above -= 1
            assert above >= 0 and lines[above].startswith("#"), f"[{section}] {key} undocumented"


def test_every_template_exists_in_every_language() -> None:
    cfg = config_module.load(ROOT / "config.toml")
    assert missing_templates(cfg.mailbot.templates, cfg.mailbot.languages) == []
    for language in cfg.mailbot.languages:
        for name in TEMPLATE_NAMES:
            assert (ROOT / "templates" / language / f"{name}.txt.j2").is_file()


def test_template_syntax_errors_are_reported_until_fixed(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    ack = templates / "pl" / "ack.txt.j2"
    good = ack.read_text(encoding="utf-8")
    ack.write_text(good + "{% if %}\n", encoding="utf-8")
    [problem] = missing_templates(templates, ("pl", "en"))
    assert problem.startswith(f"templates/pl/ack.txt.j2:{good.count(chr(10)) + 1}: ")
    ack.write_text(good, encoding="utf-8")  # the checked texts, not the paths, decide
    assert missing_templates(templates, ("pl", "en")) == []


def test_check_config_reports_every_problem_at_once(tmp_path: Path, capsys) -> None:
    path = write_config(
        tmp_path,
        timezone='"Europe/Atlantis"',
        languages='["pl", "en", "de"]',
        max_attempts='"three"',
        open='"8 o\'clock"',
        first_response='"2 fortnights"',
        password_file='"missing-secret.txt"',
    )
    text = path.read_text().replace("[hours]\n", '[hours]\ncolour = "blue"\n')
    path.write_text(text)
    assert main(["--config", str(path), "check-config"]) == 1
    out = capsys.readouterr().out.splitlines()
    expected_prefixes = [
        "config.toml: [mailbot] timezone: unknown timezone 'Europe/Atlantis'",
        "config.toml: [mailbot] max_attempts: expected an integer, got str",
        "config.toml: [inbound.imap] password_file: cannot read",
        "config.toml: [hours] colour: unknown key",
        "config.toml: [hours] open: ",
        "config.toml: [sla] first_response: ",
        "config.toml: [mailbot] templates: missing template templates/de/ack.txt.j2",
    ]
    for prefix in expected_prefixes:
        assert any(line.startswith(prefix) for line in out), (prefix, out)
    assert all(line.startswith("config.toml: [") for line in out), out


def test_wrong_types_and_bad_values_are_named(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, listen='"localhost"', days='["mon", "funday"]', warn_before='"4h"'
    )
    with pytest.raises(ConfigError) as info:
        config_module.load(path)
    problems = "\n".join(info.value.problems)
    assert "[inbound.smtp] listen: expected HOST:PORT" in problems
    assert "[hours] days: unknown weekday 'funday'" in problems
    assert "[sla] warn_before: expected a list of strings" in problems


def test_secret_from_env_is_required_when_imap_is_enabled(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MAILBOT_IMAP_PASSWORD", raising=False)
    text = (
        write_config(tmp_path)
        .read_text()
        .replace(
            "[inbound.imap]\n# Read the support mailbox over IMAP (production). Off by default.\n"
            "enabled = false",
            "[inbound.imap]\nenabled = true",
        )
    )
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        config_module.load(tmp_path / "config.toml")
    assert any("MAILBOT_IMAP_PASSWORD is not set" in p for p in info.value.problems)
    monkeypatch.setenv("MAILBOT_IMAP_PASSWORD", "s3cret-value")
    cfg = config_module.load(tmp_path / "config.toml")
    assert cfg.imap.password.read() == "s3cret-value"
    assert "s3cret-value" not in repr(cfg)


def test_config_path_defaults_to_environment_variable(tmp_path: Path, monkeypatch, capsys) -> None:
    path = write_config(tmp_path)
    monkeypatch.setenv("MAILBOT_CONFIG", str(path))
    assert main(["check-config"]) == 0
    assert "OK" in capsys.readouterr().out
