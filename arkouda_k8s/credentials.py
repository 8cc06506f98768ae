"""The secrets of one deployment: SSH key pair, server token and, with registration
"server" only, the TLS client key + CSR of the server's certificate.

Everything is generated in memory with ``cryptography`` and handed to the Kubernetes
API as Secret data; nothing is written to the local disk. ``repr``/``str`` of a
:class:`Credentials` show only public facts (the user, key types, fingerprints).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from .errors import SpecError

# The image's sshd and the launch scripts expect id_rsa; 3072 bits is today's minimum
# for RSA and generates in well under a second.
SSH_KEY_BITS = 3072


# Masks for text that comes from the cluster (logs): the stand-in and real servers print
# their connect URL with the token, and a PEM block must never reach an output.
# token=..., "token": "...", 'token': '...' (JSON and Python reprs), and HTTP bearer
# credentials (Authorization: Bearer ...).
_TOKEN_RE = re.compile(r"(?i)(token[\"']?\s*[=:]\s*[\"']?|\bbearer\s+)([A-Za-z0-9_~+/.-]{8,}=*)")
_PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.S)
MASK = "********"


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with tokens, PEM blocks and the given secret strings masked."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, MASK)
    text = _PEM_RE.sub(lambda m: f"-----BEGIN {m.group(1)}----- {MASK}", text)
    return _TOKEN_RE.sub(lambda m: m.group(1) + MASK, text)


class LineRedactor:
    """``redact`` for text that arrives a line at a time (a followed log): a PEM block
    spans lines, so the lines between its BEGIN and END are dropped, not shown.

    >>> r = LineRedactor(secrets=(token,))                      # doctest: +SKIP
    >>> [r(line) for line in lines]   # None: a line inside a PEM block
    """

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self.secrets = secrets
        self._in_pem: str | None = None

    def __call__(self, line: str) -> str | None:
        if self._in_pem is not None:
            if f"-----END {self._in_pem}-----" in line:
                self._in_pem = None
            return None
        m = _PEM_BEGIN_RE.search(line)
        if m and f"-----END {m.group(1)}-----" not in line:
            self._in_pem = m.group(1)
            return redact(line[: m.start()], self.secrets) + f"-----BEGIN {m.group(1)}----- {MASK}"
        return redact(line, self.secrets)


_PEM_BEGIN_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
# What a terminal would act on rather than show: escape sequences (CSI colours and cursor
# moves, OSC titles and hyperlinks, others), then any C0/C1 control character left (a
# carriage return overwrites the line it ends). Tabs and newlines stay.
_ESCAPE_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, ended by BEL or ST
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # any other escape
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_control(text: str) -> str:
    """``text`` safe to write to a terminal: escape sequences and control characters
    (other than tab and newline) removed, so text from the cluster (logs, events) cannot
    recolour, retitle, move the cursor or hide what came before it."""
    return _CONTROL_RE.sub("", _ESCAPE_RE.sub("", text))


def user_for(name: str, namespace: str) -> str:
    """The Kubernetes user (certificate CN) the server of ``name`` acts as."""
    return f"arkouda-k8s:{namespace}:{name}"


@dataclass(frozen=True, repr=False)
class Credentials:
    """Secret material of one deployment; never shown by repr or str.

    >>> creds = Credentials.generate(ClusterSpec(name="demo", namespace="team"))  # doctest: +SKIP
    >>> creds.user                                                               # doctest: +SKIP
    'arkouda-k8s:team:demo'
    """

    user: str
    ssh_private_key: bytes
    ssh_public_key: bytes
    token: str
    # Registration "server" only (the chart's CSR flow); None otherwise, where nothing
    # would use them.
    tls_key: bytes | None = None
    csr: bytes | None = None
    certificate: bytes | None = None

    @staticmethod
    def user_for(spec: Any) -> str:
        """``arkouda-k8s:<namespace>:<name>``: the certificate's CN for ``spec``."""
        if not spec.namespace:
            raise SpecError(
                "namespace",
                spec.namespace,
                "a namespace (the certificate names it): use spec.with_namespace(ns)",
            )
        return user_for(spec.name, spec.namespace)

    @classmethod
    def generate(cls, spec: Any, *, ssh_key_bits: int = SSH_KEY_BITS) -> Credentials:
        """Fresh SSH key pair and server token for ``spec``; a TLS key + CSR for
        ``spec``'s user too when its registration is "server" (the server's client
        certificate), not otherwise."""
        # Imported here: the masking above is what front ends load (`%load_ext` has a
        # 0.3 s budget); x509 (~150 ms to import) only where a CSR is made.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        user = cls.user_for(spec)
        ssh_key = rsa.generate_private_key(public_exponent=65537, key_size=ssh_key_bits)
        ssh_private = ssh_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        ssh_public = (
            ssh_key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            + f" arkouda-k8s@{spec.name}\n".encode()
        )
        creds = cls(
            user=user,
            ssh_private_key=ssh_private,
            ssh_public_key=ssh_public,
            token=secrets.token_hex(32),
        )
        if spec.registration == "server":
            tls_key, csr = _tls_key_and_csr(user)
            creds = dataclasses.replace(creds, tls_key=tls_key, csr=csr)
        return creds

    def with_certificate(self, certificate: bytes) -> Credentials:
        """A copy holding the certificate the CSR was approved with (PEM)."""
        return dataclasses.replace(self, certificate=certificate)

    @property
    def csr_base64(self) -> str:
        """The CSR as the CertificateSigningRequest's ``spec.request`` wants it."""
        if self.csr is None:
            raise ValueError("no CSR: credentials of a registration other than server")
        return base64.b64encode(self.csr).decode()

    @property
    def ssh_fingerprint(self) -> str:
        """``SHA256:...`` of the SSH public key, as ssh-keygen -l shows it."""
        blob = base64.b64decode(self.ssh_public_key.split()[1])
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    def __repr__(self) -> str:
        tls = ""
        if self.tls_key is not None:
            tls = f"tls=EC P-256 (certificate {'approved' if self.certificate else 'pending'}), "
        return f"Credentials(user={self.user!r}, ssh={self.ssh_fingerprint}, {tls}token=<hidden>)"

    __str__ = __repr__


def _tls_key_and_csr(user: str) -> tuple[bytes, bytes]:
    """A fresh TLS client key (PEM, PKCS#8) and a CSR for ``user`` signed with it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    # P-256: accepted by the kube-apiserver-client signer and far quicker than RSA.
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem_key, csr.public_bytes(serialization.Encoding.PEM)
