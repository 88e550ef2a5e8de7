"""API keys: made for a tenant, kept as digests, revoked; the local stack's development key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from jobstream.auth import add_key, dev_key, dev_key_file, ensure_dev_key, tenant_of_key
from jobstream.keys_store import digest, keys_file, load_keys, remove_key
from jobstream.settings import Settings


def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path)


def test_the_keys_file_holds_digests_never_a_key(tmp_path: Path) -> None:
    key = add_key(settings(tmp_path), "acme")
    text = keys_file(settings(tmp_path)).read_text()
    assert key not in text
    assert digest(key) in text
    assert tenant_of_key(load_keys(settings(tmp_path)), key) == "acme"
    assert tenant_of_key(load_keys(settings(tmp_path)), key + "x") is None
    assert tenant_of_key(load_keys(settings(tmp_path)), digest(key)) is None  # the digest is not a key
    remove_key(settings(tmp_path), key)
    assert tenant_of_key(load_keys(settings(tmp_path)), key) is None


def test_a_key_written_in_the_clear_by_hand_still_works(tmp_path: Path) -> None:
    keys_file(settings(tmp_path)).write_text(json.dumps({"keys": {"hand-written": "acme"}}))
    assert tenant_of_key(load_keys(settings(tmp_path)), "hand-written") == "acme"


def test_only_the_local_stack_has_a_development_key(tmp_path: Path) -> None:
    assert dev_key(settings(tmp_path)) is None  # nothing makes one but `jobstream up`
    key = ensure_dev_key(settings(tmp_path))
    assert ensure_dev_key(settings(tmp_path)) == key == dev_key(settings(tmp_path))
    assert stat.S_IMODE(dev_key_file(settings(tmp_path)).stat().st_mode) == 0o600
    assert tenant_of_key(load_keys(settings(tmp_path)), key) == "dev"
    assert key not in keys_file(settings(tmp_path)).read_text()


def test_a_key_is_made_only_for_a_valid_tenant_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lowercase"):
        add_key(settings(tmp_path), "acme/x")


def test_the_local_stack_hashes_a_file_from_before_keys_were_hashed(tmp_path: Path) -> None:
    keys_file(settings(tmp_path)).write_text(json.dumps({"keys": {"js_dev_old": "dev", "js_acme_old": "acme"}}))
    ensure_dev_key(settings(tmp_path))
    text = keys_file(settings(tmp_path)).read_text()
    assert "js_dev_old" not in text
    assert "js_acme_old" not in text
    assert tenant_of_key(load_keys(settings(tmp_path)), "js_acme_old") == "acme"
