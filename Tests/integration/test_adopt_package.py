"""The README's library instructions are true: a throwaway package with the README's
Package.swift lines (package "wss-server", products WSServer and WSClient) and the README's
server code builds against this checkout (issue 15). Slow the first time (it builds the
library); incremental afterwards (its scratch folder is .build-package-test/)."""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from conftest import REPO


def readme_library_blocks():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## The library"):]
    section = section[:section.index("\n## ", 3)]
    return re.findall(r"```swift\n(.*?)```", section, re.S)


def test_readme_package_lines_and_code_build():
    blocks = readme_library_blocks()
    manifest_lines, server_code = blocks[0], blocks[1]
    assert '.package(url: "https://github.com/OWNER/wss-server.git", from: "0.1.0")' in manifest_lines
    assert '.product(name: "WSServer", package: "wss-server")' in manifest_lines
    assert (REPO / "VERSION").read_text().strip().startswith("0.1."), "README's from: \"0.1.0\" must match VERSION"
    # The same lines, with the URL replaced by a path (no network here). SwiftPM takes the
    # package's name from the path's last component, so the checkout is reached through a
    # link named wss-server, as a clone of the real URL would be named.
    local = manifest_lines.replace('.package(url: "https://github.com/OWNER/wss-server.git", from: "0.1.0")',
                                   '.package(path: "../wss-server")')
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        os.symlink(REPO, root / "wss-server")
        app = root / "app"
        (app / "Sources" / "MyServer").mkdir(parents=True)
        (app / "Package.swift").write_text(
            "// swift-tools-version:6.0\nimport PackageDescription\n"
            f"let package = Package(\n    name: \"MyServer\",\n{local.strip()}\n)\n")
        (app / "Sources" / "MyServer" / "main.swift").write_text(server_code)
        r = subprocess.run(["swift", "build", "--package-path", str(app),
                            "--scratch-path", str(REPO / ".build-package-test")],
                           capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
