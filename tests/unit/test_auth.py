"""The API keys file: written atomically and private from the start, read whole even while an editor
rewrites it in place, and a broken one is a clear error."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from jobstream.auth import KeysFileError, ensure_dev_key, keys_file, load_keys, write_keys
from jobstream.settings import Settings


def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path)


def test_the_keys_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    key = ensure_dev_key(settings(tmp_path))
    path = keys_file(settings(tmp_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keys(settings(tmp_path)) == {key: "dev"}
    write_keys(path, {key: "dev", "k2": "acme"})
    assert load_keys(settings(tmp_path)) == {key: "dev", "k2": "acme"}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_a_file_read_in_the_middle_of_a_rewrite_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = keys_file(settings(tmp_path))
    whole = json.dumps({"keys": {"k": "acme"}})
    path.write_text(whole)
    reads = iter([whole[: len(whole) // 2], whole])
    monkeypatch.setattr(Path, "read_text", lambda self, *args, **kwargs: next(reads))
    assert load_keys(settings(tmp_path)) == {"k": "acme"}


@pytest.mark.parametrize("content", ['{"keys": {"k": ', '{"keys": ["k"]}', "[1]"])
def test_a_broken_file_is_a_keys_file_error(tmp_path: Path, content: str) -> None:
    keys_file(settings(tmp_path)).write_text(content)
    with pytest.raises(KeysFileError):
        load_keys(settings(tmp_path))


def test_tenant_names_that_would_reach_into_another_tenants_objects_are_refused(tmp_path: Path) -> None:
    keys = {"k1": "acme", "k2": "acme/x", "k3": "../acme", "k4": "Acme", "k5": "", "k6": 7, "k7": "tenant-b2"}
    keys_file(settings(tmp_path)).write_text(json.dumps({"keys": keys}))
    assert load_keys(settings(tmp_path)) == {"k1": "acme", "k7": "tenant-b2"}
