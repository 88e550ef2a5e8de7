"""The API keys file: written atomically, private from the start and under a lock (concurrent writers all
land), read from its last parse while unchanged, never half, and a broken one is a clear error."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobstream.auth import add_key
from jobstream.keys_store import KeysDocument, KeysFileError, digest, keys_file, load_keys, read_keys_file, update
from jobstream.settings import PROJECT_ROOT, Settings


def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path)


def test_the_keys_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    key = add_key(settings(tmp_path), "acme")
    path = keys_file(settings(tmp_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keys(settings(tmp_path)) == {digest(key): "acme"}

    def add_beta(document: KeysDocument) -> None:
        document.keys[digest("k2")] = "beta"
        document.tenants["beta"] = {"max_streams": 3}

    update(settings(tmp_path), add_beta)
    assert load_keys(settings(tmp_path)) == {digest(key): "acme", digest("k2"): "beta"}
    assert read_keys_file(settings(tmp_path)).tenants == {"beta": {"max_streams": 3}}
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


def test_concurrent_keys_add_all_land(tmp_path: Path) -> None:
    """Each `jobstream keys add` is a read-modify-write of the whole file: without the lock, two at once lose one."""
    env = {**os.environ, "JOBSTREAM_STATE_DIR": str(tmp_path)}
    env.pop("JOBSTREAM_API_KEYS_FILE", None)
    tenants = [f"t{i}" for i in range(8)]
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "jobstream.cli", "keys", "add", tenant],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tenant in tenants
    ]
    keys = [process.communicate(timeout=60)[0].strip() for process in running]
    assert all(process.returncode == 0 for process in running)
    assert load_keys(settings(tmp_path)) == {digest(key): tenant for key, tenant in zip(keys, tenants, strict=True)}


def test_writers_in_four_processes_lose_nothing(tmp_path: Path) -> None:
    """The same race, made likely: four processes adding 25 keys each as fast as they can."""
    env = {**os.environ, "JOBSTREAM_STATE_DIR": str(tmp_path)}
    env.pop("JOBSTREAM_API_KEYS_FILE", None)
    script = "import sys\nfrom jobstream.auth import add_key\nfrom jobstream.settings import Settings\n"
    script += "for _ in range(25):\n    add_key(Settings(), sys.argv[1])\n"
    running = [subprocess.Popen([sys.executable, "-c", script, f"t{i}"], env=env, cwd=PROJECT_ROOT) for i in range(4)]
    assert all(process.wait(timeout=60) == 0 for process in running)
    assert sorted(load_keys(settings(tmp_path)).values()) == sorted(f"t{i}" for i in range(4) for _ in range(25))


def test_a_file_being_rewritten_in_place_answers_the_keys_read_before(tmp_path: Path) -> None:
    """An editor that rewrites the file in place can be caught half way: the last good read stays in force
    (no sleep on the event loop), and the finished file is read at its next change."""
    path = keys_file(settings(tmp_path))
    path.write_text(json.dumps({"keys": {"k": "acme"}}))
    assert load_keys(settings(tmp_path)) == {digest("k"): "acme"}
    whole = json.dumps({"keys": {"k": "acme", "k2": "beta"}})
    path.write_text(whole[: len(whole) // 2])
    assert load_keys(settings(tmp_path)) == {digest("k"): "acme"}
    path.write_text(whole)
    assert load_keys(settings(tmp_path))[digest("k2")] == "beta"


def test_the_file_is_parsed_again_only_when_it_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every RPC and stream open asks for the keys; an unchanged file answers from its last parse, a changed one
    (a key added or revoked) at once."""
    path = keys_file(settings(tmp_path))
    path.write_text(json.dumps({"keys": {"k": "acme"}}))
    parses: list[Path] = []
    read_text = Path.read_text

    def counted_read(self: Path, *args: Any, **kwargs: Any) -> str:
        parses.append(self)
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted_read)
    for _ in range(3):
        assert load_keys(settings(tmp_path)) == {digest("k"): "acme"}
    assert len(parses) == 1
    path.write_text(json.dumps({"keys": {"k": "acme", "k2": "beta"}}))
    assert load_keys(settings(tmp_path))[digest("k2")] == "beta"
    path.write_text(json.dumps({"keys": {"k": "acme"}}))
    assert digest("k2") not in load_keys(settings(tmp_path))
    assert len(parses) == 3


@pytest.mark.parametrize("content", ['{"keys": {"k": ', '{"keys": ["k"]}', "[1]"])
def test_a_broken_file_is_a_keys_file_error(tmp_path: Path, content: str) -> None:
    keys_file(settings(tmp_path)).write_text(content)
    with pytest.raises(KeysFileError):
        load_keys(settings(tmp_path))
    with pytest.raises(KeysFileError):  # and a writer leaves it as it is
        add_key(settings(tmp_path), "acme")
    assert keys_file(settings(tmp_path)).read_text() == content


def test_tenant_names_that_would_reach_into_another_tenants_objects_are_refused(tmp_path: Path) -> None:
    keys = {"k1": "acme", "k2": "acme/x", "k3": "../acme", "k4": "Acme", "k5": "", "k6": 7, "k7": "tenant-b2"}
    keys_file(settings(tmp_path)).write_text(json.dumps({"keys": keys}))
    assert load_keys(settings(tmp_path)) == {digest("k1"): "acme", digest("k7"): "tenant-b2"}
