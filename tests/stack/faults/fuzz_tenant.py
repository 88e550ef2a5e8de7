"""The tenant the gRPC fuzz tests run as, and the inputs it may and may not use (its `tenant` fixture is in
conftest.py, so every gRPC fuzz module shares it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tenant:
    name: str
    key: str
    removed_key: str  # a key this tenant used to have: rotated out, so refused
    upload_ref: str  # an input this tenant uploaded
    empty_ref: str  # a reference from CreateUpload with nothing uploaded to it
    foreign_ref: str  # another tenant's upload
