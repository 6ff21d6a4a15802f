"""Certificates and authority files the SIP side uses, on disk.

The node's front door (Kamailio) relays calls to its workers over TLS on loopback when the
node speaks TLS, so that SDES keys and SIP never cross even the local hop in clear. That hop
uses an internal certificate the node makes for itself at every start (EC P-256, loopback names
only, private key 0600 in the run directory); Kamailio trusts exactly that certificate for it.
The operator's certificate stays the front door's, and is reloaded on SIGHUP.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..app.layout import RunLayout
from ..config import Config
from ..errors import ConfigError
from ..storage.spool import ensure_private_dir

INTERNAL_NAME = "consent-gateway internal hop"


def internal_dir(config: Config) -> Path:
    return RunLayout.of(config).tls


def internal_pair(config: Config) -> tuple[Path, Path]:
    d = internal_dir(config)
    return d / "internal.crt", d / "internal.key"


def make_internal_pair(config: Config, days: int = 3650) -> tuple[Path, Path]:
    """A fresh self-signed certificate for 127.0.0.1/localhost, replacing any older one."""
    cert_path, key_path = internal_pair(config)
    ensure_private_dir(cert_path.parent)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, INTERNAL_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for path, data, mode in (
        (key_path, key_pem, 0o600),
        (cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644),
    ):
        tmp = path.with_suffix(".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return cert_path, key_path


def pbx_authorities(config: Config) -> Path:
    """The PEM file of authorities the PBX's certificate must chain to: [pbx] tls_ca, else the
    system's store. A missing store is a clear start-up error, never an unchecked connection."""
    if config.pbx.tls_ca is not None:
        return config.pbx.tls_ca
    for candidate in (ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ConfigError(
        "the PBX is reached over TLS but this system has no CA store (install ca-certificates) "
        "and [pbx] tls_ca is empty"
    )


def check_pair(cert: Path, key: Path, what: str) -> None:
    """The certificate and key load and belong together, or ConfigError naming `what`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"{what}: {cert} and {key} do not load as a certificate and its key: {e}") from None
