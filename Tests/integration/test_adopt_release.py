"""Adoption basics: license, version from the build (issue 15)."""
from __future__ import annotations

import re
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from conftest import REPO, SERVER_BIN

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
BUILD_INFO = REPO / "Plugins" / "BuildInfoPlugin" / "build-info.sh"


def test_license_is_apache_2_and_named():
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    # The full text, not a pointer to it: all nine sections and the end marker.
    for section in ["1. Definitions.", "4. Redistribution.", "9. Accepting Warranty or Additional Liability."]:
        assert section in text, section
    assert "END OF TERMS AND CONDITIONS" in text
    assert "Apache-2.0" in (REPO / "README.md").read_text()
    header = (REPO / "Package.swift").read_text().splitlines()[:5]
    assert any("Apache-2.0" in line for line in header), header


def git_describe() -> str:
    return subprocess.run(["git", "-C", str(REPO), "describe", "--tags", "--always", "--dirty"],
                          capture_output=True, text=True, check=True).stdout.strip()


def check_version_output(tool: Path, name: str):
    out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(rf"{name} (\S+) \(git (\S+)\)\n", out.stdout)
    assert m, out.stdout
    assert SEMVER.match(m.group(1)), m.group(1)
    assert m.group(1) == (REPO / "VERSION").read_text().strip() or m.group(1) == git_describe().lstrip("v")
    assert m.group(2) == git_describe(), "binary built from another commit (rebuild after committing)"


def test_server_version_matches_git_describe():
    check_version_output(SERVER_BIN, "wss-server")


def test_bench_version_matches_git_describe():
    check_version_output(SERVER_BIN.parent / "wss-bench", "wss-bench")


def test_build_info_in_metrics(server_factory):
    plain_server = server_factory("ws")
    body = urllib.request.urlopen(f"http://127.0.0.1:{plain_server.port}/metrics", timeout=5).read().decode()
    line = next((l for l in body.splitlines() if l.startswith("wss_build_info{")), None)
    version = (REPO / "VERSION").read_text().strip()
    assert line == f'wss_build_info{{version="{version}",commit="{git_describe()}"}} 1', line


def run_generator(repo: Path, out: Path) -> str:
    subprocess.run(["sh", str(BUILD_INFO), str(repo), str(out)], check=True)
    return (out / "BuildInfo+Generated.swift").read_text()


def test_generator_follows_commits_and_rewrites_only_on_change():
    with tempfile.TemporaryDirectory() as d:
        repo, out = Path(d) / "r", Path(d) / "out"
        repo.mkdir()
        git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True, text=True).stdout.strip()
        git("init", "-q")
        (repo / "VERSION").write_text("1.2.3\n")
        git("add", "VERSION")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
        first = run_generator(repo, out)
        assert 'generatedVersion = "1.2.3"' in first
        assert f'generatedDescribe = "{git("describe", "--always")}"' in first
        mtime = (out / "BuildInfo+Generated.swift").stat().st_mtime_ns
        assert run_generator(repo, out) == first
        assert (out / "BuildInfo+Generated.swift").stat().st_mtime_ns == mtime, "rewritten without a change"
        (repo / "VERSION").write_text("1.2.4\n")
        assert "-dirty" in run_generator(repo, out)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two")
        second = run_generator(repo, out)
        assert f'generatedCommit = "{git("rev-parse", "HEAD")}"' in second and "-dirty" not in second
        git("tag", "v2.0.0")
        assert 'generatedVersion = "2.0.0"' in run_generator(repo, out), "a release tag on HEAD wins"
