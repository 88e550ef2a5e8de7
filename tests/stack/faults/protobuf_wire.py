"""SubmitJob as raw bytes, for the fuzzer: protobuf's wire format written by hand, so that payloads no client
would send (invalid UTF-8, truncated or bit-flipped messages, numbers out of range) reach the service."""

from __future__ import annotations

import math
import struct

from hypothesis import strategies as st

from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams

INVALID_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"ok\xfe"]


def varint(value: int) -> bytes:
    value &= 2**64 - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(number: int, data: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(data)) + data


def raw_submits() -> st.SearchStrategy[bytes]:
    valid = st.builds(
        lambda prompt, tokens: api.SubmitJobRequest(
            prompt=prompt, params=GenerationParams(max_tokens=tokens)
        ).SerializeToString(),
        st.text(min_size=1, max_size=40),
        st.integers(1, 16),
    )
    bad_text = st.builds(
        lambda head, bad, tail: head + bad + tail,
        st.binary(max_size=6),
        st.sampled_from(INVALID_UTF8),
        st.binary(max_size=6),
    )
    wire_params = st.builds(
        lambda tokens, temperature, seed: varint(1 << 3)
        + varint(tokens)
        + varint(2 << 3 | 1)
        + temperature
        + varint(3 << 3)
        + varint(seed),
        st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([2**64 - 1, 2**63, 2**32 + 5, 2**31, 4096])),
        st.one_of(
            st.binary(min_size=8, max_size=8),
            st.sampled_from([struct.pack("<d", v) for v in (math.nan, math.inf, -math.inf, 1.0, 5e-324)]),
        ),
        st.integers(0, 2**64 - 1),
    )
    return st.one_of(
        st.binary(max_size=300),  # noise
        st.builds(
            lambda base, field, text: base + length_delimited(field, text),
            valid,
            st.sampled_from([1, 2, 3, 5]),
            bad_text,
        ),
        st.builds(lambda base, cut: base[: max(0, len(base) - cut)], valid, st.integers(1, 40)),  # truncated
        st.builds(
            lambda base, at, bit: bytes(
                b ^ (1 << bit) if i == at % max(1, len(base)) else b for i, b in enumerate(base)
            ),
            valid,
            st.integers(0, 200),
            st.integers(0, 7),
        ),
        st.builds(
            lambda prompt, params: length_delimited(2, prompt) + length_delimited(4, params),
            st.just(b"Hello"),
            wire_params,
        ),
    )
