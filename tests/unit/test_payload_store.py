"""jobstream/payload_store.py: what can be known of a presigned URL without asking MinIO."""

from __future__ import annotations

from datetime import UTC, datetime

from jobstream.payload_store import url_expiry


def test_a_presigned_urls_expiry_is_read_from_its_signature() -> None:
    url = "http://127.0.0.1:9000/b/k?X-Amz-Date=20261205T080000Z&X-Amz-Expires=3600&X-Amz-Signature=ab"
    assert url_expiry(url) == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    assert url_expiry("https://example.com/result.txt") is None
    assert url_expiry("http://h/b/k?X-Amz-Date=yesterday&X-Amz-Expires=3600") is None
