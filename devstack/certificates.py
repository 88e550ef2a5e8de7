"""Certificates for the TLS tests and the cluster profile's edge: a CA made for the occasion and a server
certificate it signed, as PEM files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True)
class Certificate:
    ca: Path  # the CA's certificate: what a client trusts
    chain: Path  # the server's certificate chain
    key: Path  # its private key, PKCS#8 (Kafka's PEM keystore takes no other form; every other server takes it)


def issue(folder: Path, chain_name: str = "cert.pem", key_name: str = "key.pem") -> Certificate:
    """A certificate for 127.0.0.1 and localhost, signed by a new CA, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    made = Certificate(folder / "ca.pem", folder / chain_name, folder / key_name)
    authority.cert_pem.write_to_path(str(made.ca))
    made.chain.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    made.key.write_bytes(key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    return made
