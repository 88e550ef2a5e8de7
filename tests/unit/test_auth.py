"""The API keys file: written atomically and private from the start, read whole even while an editor
rewrites it in place, and a broken one is a clear error."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from jobstream.auth import (
    KeysFileError,
    add_key,
    dev_key,
    dev_key_file,
    digest,
    ensure_dev_key,
    keys_file,
    load_keys,
    remove_key,
    tenant_of,
    write_keys,
)
from jobstream.settings import Settings


def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path)


def test_the_keys_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    key = add_key(settings(tmp_path), "acme")
    path = keys_file(settings(tmp_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keys(settings(tmp_path)) == {digest(key): "acme"}
    write_keys(path, {digest(key): "acme", digest("k2"): "beta"})
    assert load_keys(settings(tmp_path)) == {digest(key): "acme", digest("k2"): "beta"}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_the_keys_file_holds_digests_never_a_key(tmp_path: Path) -> None:
    key = add_key(settings(tmp_path), "acme")
    text = keys_file(settings(tmp_path)).read_text()
    assert key not in text
    assert digest(key) in text
    assert tenant_of(load_keys(settings(tmp_path)), key) == "acme"
    assert tenant_of(load_keys(settings(tmp_path)), key + "x") is None
    assert tenant_of(load_keys(settings(tmp_path)), digest(key)) is None  # the digest is not a key
    remove_key(settings(tmp_path), key)
    assert tenant_of(load_keys(settings(tmp_path)), key) is None


def test_a_key_written_in_the_clear_by_hand_still_works(tmp_path: Path) -> None:
    keys_file(settings(tmp_path)).write_text(json.dumps({"keys": {"hand-written": "acme"}}))
    assert tenant_of(load_keys(settings(tmp_path)), "hand-written") == "acme"


def test_only_the_local_stack_has_a_development_key(tmp_path: Path) -> None:
    assert dev_key(settings(tmp_path)) is None  # nothing makes one but `jobstream up`
    key = ensure_dev_key(settings(tmp_path))
    assert ensure_dev_key(settings(tmp_path)) == key == dev_key(settings(tmp_path))
    assert stat.S_IMODE(dev_key_file(settings(tmp_path)).stat().st_mode) == 0o600
    assert tenant_of(load_keys(settings(tmp_path)), key) == "dev"
    assert key not in keys_file(settings(tmp_path)).read_text()


def test_a_key_is_made_only_for_a_valid_tenant_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lowercase"):
        add_key(settings(tmp_path), "acme/x")


def test_a_file_read_in_the_middle_of_a_rewrite_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = keys_file(settings(tmp_path))
    whole = json.dumps({"keys": {"k": "acme"}})
    path.write_text(whole)
    reads = iter([whole[: len(whole) // 2], whole])
    monkeypatch.setattr(Path, "read_text", lambda self, *args, **kwargs: next(reads))
    assert load_keys(settings(tmp_path)) == {digest("k"): "acme"}


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


def test_tenant_names_that_would_reach_into_another_tenants_objects_are_refused(tmp_path: Path) -> None:
    keys = {"k1": "acme", "k2": "acme/x", "k3": "../acme", "k4": "Acme", "k5": "", "k6": 7, "k7": "tenant-b2"}
    keys_file(settings(tmp_path)).write_text(json.dumps({"keys": keys}))
    assert load_keys(settings(tmp_path)) == {digest("k1"): "acme", digest("k7"): "tenant-b2"}


def test_the_local_stack_hashes_a_file_from_before_keys_were_hashed(tmp_path: Path) -> None:
    keys_file(settings(tmp_path)).write_text(json.dumps({"keys": {"js_dev_old": "dev", "js_acme_old": "acme"}}))
    ensure_dev_key(settings(tmp_path))
    text = keys_file(settings(tmp_path)).read_text()
    assert "js_dev_old" not in text
    assert "js_acme_old" not in text
    assert tenant_of(load_keys(settings(tmp_path)), "js_acme_old") == "acme"
