"""systemd/mailbot.service as shipped: the README's install steps make its paths, it verifies, and
its sandbox keeps `systemd-analyze security` exposure at or below 1.6."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.helpers import ROOT

UNIT = ROOT / "systemd" / "mailbot.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def _install_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running under systemd", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def _installed_paths() -> dict[str, str]:
    """What the README's install steps create, by what each is."""
    steps = _install_block()
    clone = re.search(r"git clone .+? (/\S+) && cd \1 && sudo make (\S+)", steps)
    assert clone, "README: clone into a directory and make the virtualenv there"
    prefix, target = clone.groups()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    venv = re.search(r"^VENV := (\S+)$", makefile, re.M)
    assert venv and target == f"{venv[1]}/.installed", "the make target that installs mailbot"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "mailbot" in scripts
    installs = dict(re.findall(r"sudo install -m \d+(?: -g \w+)? (\S+) (/\S+)", steps))
    return {
        "program": f"{prefix}/{venv[1]}/bin/mailbot",
        "readme": f"{prefix}/README.md",
        "config": installs["config.toml"],
        "secrets": installs["/dev/null"],
        "unit": installs["systemd/mailbot.service"],
    }


def test_readme_install_steps_create_the_paths_the_unit_names() -> None:
    paths = _installed_paths()
    settings = _settings(UNIT.read_text(encoding="utf-8"))
    [exec_start] = settings["ExecStart"]
    program, *arguments = exec_start.split()
    assert program == paths["program"]
    assert arguments[arguments.index("--config") + 1] == paths["config"]
    assert settings["EnvironmentFile"] == [f"-{paths['secrets']}"]
    assert settings["Documentation"] == [f"file://{paths['readme']}"]
    assert settings["ReadOnlyPaths"] == [str(Path(paths["config"]).parent)]
    assert paths["unit"] == "/etc/systemd/system/mailbot.service"
    assert settings["LimitNOFILE"] and int(settings["LimitNOFILE"][0]) >= 4096


def _root_after_install(tmp_path: Path) -> Path:
    """A file-system root holding what the README's steps leave behind, for `--root`."""
    root = tmp_path / "root"
    program = root / _installed_paths()["program"].lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    # What any Debian/Fedora host has: kill(1) for ExecReload and the stock units (targets).
    (root / "bin").mkdir()
    shutil.copy2("/bin/kill", root / "bin" / "kill")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    return root


def _verify(root: Path, unit: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of `unit` installed where the README puts it, inside `root`."""
    assert ANALYZE is not None
    installed = root / _installed_paths()["unit"].lstrip("/")
    installed.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(unit, installed)
    return subprocess.run(
        [ANALYZE, "verify", f"--root={root}", str(installed)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_analyze
def test_shipped_unit_verifies(tmp_path: Path) -> None:
    root = _root_after_install(tmp_path)
    result = _verify(root, UNIT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # The check has teeth: without the installed program the unit does not verify.
    (root / _installed_paths()["program"].lstrip("/")).unlink()
    missing = _verify(root, UNIT)
    assert missing.returncode != 0 and "is not executable" in missing.stderr


@needs_analyze
def test_unit_with_the_documented_credential_line_verifies(tmp_path: Path) -> None:
    """The README's `systemctl edit` line, applied to the unit, is valid systemd syntax."""
    steps = (ROOT / "README.md").read_text(encoding="utf-8")
    [line] = re.findall(r"# (LoadCredential=imap-password:\S+)", steps)
    unit = tmp_path / "mailbot.service"
    unit.write_text(UNIT.read_text().replace("[Service]\n", f"[Service]\n{line}\n"))
    root = _root_after_install(tmp_path)
    result = _verify(root, unit)
    assert result.returncode == 0, result.stderr
    assert "imap-password" in UNIT.read_text() and "${CREDENTIALS_DIRECTORY}" in UNIT.read_text()


@needs_analyze
def test_sandbox_exposure_at_most_1_6() -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline")
    match = re.search(r"Overall exposure level for mailbot\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match[1]) <= 1.6
    # Every setting the review counts against us is left out on purpose and says why.
    text = UNIT.read_text(encoding="utf-8")
    for line in result.stdout.splitlines():
        if line.startswith("✗"):
            setting = line.split()[1].split("=")[0].split("/")[0]
            explained = f"# - {setting}=" in text or f", {setting}=" in text
            assert explained, f"{setting} is neither set nor explained in the unit"
