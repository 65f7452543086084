"""Helpers shared by test modules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from rivetgreen.encoding.cbor import decode
from rivetgreen.storage import ActorStore, LocalSqliteBackend


def stored_state(registry: Any, actor_id: str) -> Any:
    """The state bytes on disk right now, decoded, read through a second connection to the actor's file."""
    store = ActorStore(LocalSqliteBackend(os.path.join(registry.data_dir, "actors", f"{actor_id}.sqlite")))
    try:
        return decode(store.load().state)
    finally:
        store.close()


def npm_install(prefix: Path, package: str, version: str) -> Path:
    """``package@version`` installed under ``prefix/node_modules`` (a folder under the git-ignored ``.cache``) unless
    that version is already there; returns the package's folder. Raises ``RuntimeError`` with npm's output when node
    or npm is missing or the install fails."""
    folder = prefix / "node_modules" / package
    if installed_npm_version(folder) == version:
        return folder
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError(f"node and npm are required to install {package}@{version} (sh tests/install-tools.sh)")
    prefix.mkdir(parents=True, exist_ok=True)
    # --prefer-offline: what npm's cache holds is used without asking the registry again (a slow or flaky registry
    # then costs nothing on a machine that installed these before); a fresh machine still fetches everything.
    command = ["npm", "install", "--prefer-offline", "--no-audit", "--no-fund", "--prefix", str(prefix),
               f"{package}@{version}"]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as timeout:
        raise RuntimeError(f"npm install {package}@{version} did not finish in 600 s: {timeout.stderr!r}") from None
    if completed.returncode != 0 or installed_npm_version(folder) != version:
        raise RuntimeError(f"npm install {package}@{version} failed:\n{completed.stdout}\n{completed.stderr}")
    return folder


def installed_npm_version(folder: Path) -> str | None:
    manifest = folder / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None
