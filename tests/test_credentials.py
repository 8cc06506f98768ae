"""Credentials: usable key material, the right certificate user, nothing shown."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from arkouda_k8s.credentials import Credentials
from arkouda_k8s.errors import SpecError
from arkouda_k8s.spec import ClusterSpec

SPEC = ClusterSpec(name="demo", namespace="team")
SERVER_SPEC = SPEC.replace(registration="server")


@pytest.fixture(scope="module", params=["client", "server"])
def creds(request) -> Credentials:
    """Credentials of both registrations: what holds for both is checked on each."""
    return Credentials.generate(SPEC.replace(registration=request.param))


@pytest.fixture(scope="module")
def server_creds() -> Credentials:
    return Credentials.generate(SERVER_SPEC)


def test_ssh_key_pair_is_openssh_rsa_and_matches(creds):
    assert creds.ssh_private_key.startswith(b"-----BEGIN OPENSSH " + b"PRIVATE KEY-----")
    key = serialization.load_ssh_private_key(creds.ssh_private_key, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size >= 3072
    public = serialization.load_ssh_public_key(creds.ssh_public_key)
    assert public.public_numbers() == key.public_key().public_numbers()
    assert creds.ssh_public_key.startswith(b"ssh-rsa ")


def test_csr_names_the_instance_user_and_matches_the_tls_key(server_creds):
    creds = server_creds
    assert creds.user == "arkouda-k8s:team:demo" == Credentials.user_for(SERVER_SPEC)
    assert creds.csr is not None and creds.tls_key is not None
    csr = x509.load_pem_x509_csr(creds.csr)
    assert csr.is_signature_valid
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == creds.user
    key = serialization.load_pem_private_key(creds.tls_key, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()
    assert base64.b64decode(creds.csr_base64) == creds.csr


def test_registration_client_gets_no_tls_key_or_csr():
    """The default registration has no client certificate: no key is made that nothing
    would use, and nothing claims one."""
    creds = Credentials.generate(SPEC)
    assert SPEC.registration == "client"
    assert creds.tls_key is None and creds.csr is None and creds.certificate is None
    assert "tls" not in repr(creds).lower()
    with pytest.raises(ValueError, match="no CSR"):
        _ = creds.csr_base64
    # ...and what client mode does use is all there
    assert creds.ssh_private_key and creds.ssh_public_key and creds.token


def test_token_is_long_random_hex(creds):
    assert re.fullmatch(r"[0-9a-f]{64}", creds.token)
    other = Credentials.generate(SPEC, ssh_key_bits=3072)
    assert other.token != creds.token
    assert other.ssh_private_key != creds.ssh_private_key


def test_tls_keys_are_fresh_each_time(server_creds):
    assert Credentials.generate(SERVER_SPEC).tls_key != server_creds.tls_key


def test_certificate_is_added_by_copy(server_creds):
    creds = server_creds
    assert creds.certificate is None
    with_cert = creds.with_certificate(b"-----BEGIN CERTIFICATE-----\n...")
    assert with_cert.certificate is not None
    assert creds.certificate is None
    assert "approved" in repr(with_cert) and "pending" in repr(creds)


def _secret_fragments(creds: Credentials) -> list[str]:
    """Pieces of every secret, in the forms they might leak in."""
    out = [creds.token]
    for pem in (creds.ssh_private_key, creds.tls_key):
        if pem is None:
            continue
        body = [ln for ln in pem.decode().splitlines() if ln and not ln.startswith("-----")]
        out += body
        out.append(base64.b64encode(pem).decode()[:40])
    return out


def test_repr_and_str_show_no_secret_material(creds):
    shown = [repr(creds), str(creds), f"{creds}", f"{creds!r}", repr([creds]), repr({"c": creds})]
    for text in shown:
        assert "arkouda-k8s:team:demo" in text
        assert "SHA256:" in text  # the public fingerprint identifies the key
        for fragment in _secret_fragments(creds):
            assert fragment not in text
    # The check itself can fail: the fragments do occur in the material.
    assert _secret_fragments(creds)[1] in creds.ssh_private_key.decode()


def test_spec_repr_holds_no_credentials(creds):
    text = repr(SPEC) + str(SPEC)
    for fragment in _secret_fragments(creds):
        assert fragment not in text


def test_user_needs_a_namespace():
    with pytest.raises(SpecError) as err:
        Credentials.generate(ClusterSpec(name="demo"))
    assert err.value.field == "namespace"


@pytest.mark.parametrize(
    "text",
    [
        "token=f00dfeedc0ffee12",
        '{"token": "f00dfeedc0ffee12"}',
        "{'token': 'f00dfeedc0ffee12'}",
        "ARKOUDA_SERVER_TOKEN='f00dfeedc0ffee12'",
        "Authorization: Bearer f00dfeedc0ffee12",
        "authorization: bearer f00dfeedc0ffee12",
    ],
)
def test_redact_masks_quoted_and_bearer_forms(text):
    from arkouda_k8s.credentials import MASK, redact

    out = redact(text)
    assert "f00dfeedc0ffee12" not in out and MASK in out
