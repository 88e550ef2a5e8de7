"""Replicas that disagree on what they must share refuse to start, naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobstream import agreement
from jobstream.settings import Settings


def settings(tmp_path: Path, secret: str = "s" * 40, partitions: int = 8) -> Settings:
    return Settings(state_dir=tmp_path, stream_token_secret=secret, events_partitions=partitions)


def test_replicas_with_the_same_settings_agree(tmp_path: Path) -> None:
    recorded = agreement.of(settings(tmp_path), 8)
    agreement.compare(recorded, agreement.of(settings(tmp_path / "other"), 8))
    assert "s" * 40 not in recorded.model_dump_json()  # only a fingerprint is stored


def test_another_stream_token_secret_is_refused(tmp_path: Path) -> None:
    recorded = agreement.of(settings(tmp_path), 8)
    with pytest.raises(agreement.Disagreement, match="JOBSTREAM_STREAM_TOKEN_SECRET"):
        agreement.compare(recorded, agreement.of(settings(tmp_path, secret="t" * 40), 8))


def test_a_partition_count_other_than_the_topics_is_refused(tmp_path: Path) -> None:
    with pytest.raises(agreement.Disagreement, match="JOBSTREAM_EVENTS_PARTITIONS is 8"):
        agreement.of(settings(tmp_path), 16)


def test_a_topic_whose_partitions_changed_since_the_first_replica_is_refused(tmp_path: Path) -> None:
    recorded = agreement.of(settings(tmp_path), 8)
    with pytest.raises(agreement.Disagreement, match="must never change"):
        agreement.compare(recorded, agreement.of(settings(tmp_path, partitions=16), 16))
