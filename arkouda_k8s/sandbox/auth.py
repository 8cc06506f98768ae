"""Identity for the sandbox API server: its CA, who is calling, and what they may do.

- ``CertificateAuthority``: the sandbox's own CA (EC P-256, in memory), the server's
  TLS certificate (SANs 127.0.0.1, localhost, kubernetes.default.svc) and the
  ``kubernetes.io/kube-apiserver-client`` signer behind approved CSRs.
- ``UserInfo`` and ``Authenticator``: bearer tokens and client certificates (CN = user,
  O = groups), like kube-apiserver's x509 and static-token authenticators.
- ``authorize``: RBAC over the stored Roles/RoleBindings/ClusterRoles/
  ClusterRoleBindings, with the real ``... is forbidden: User "x" cannot ...`` wording.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import os
import secrets
import ssl
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .bootstrap_policy import user_facing_roles
from .store import match_label_selector_obj

ADMIN_USER = "sandbox-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
SERVER_NAMES = (
    "localhost",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "kubernetes.default",
    "kubernetes",
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# kube-apiserver is Go: for TLS 1.3 clients that lead with AES (OpenSSL, Go) on hardware
# with AES instructions, crypto/tls picks by its own order, AES-128-GCM first. OpenSSL's
# server order puts AES-256-GCM first, which would make every sandbox transfer cost more
# than against a real cluster.
_GO_TLS13_SUITES = b"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"


def _prefer_go_tls13_suites(ctx: ssl.SSLContext) -> bool:
    """Give ``ctx`` Go's TLS 1.3 cipher suite order; False (defaults kept) if unavailable.

    The ssl module (3.11) has no call for TLS 1.3 suites, so this asks OpenSSL itself
    through the library the ssl module is linked to. The SSL_CTX pointer sits right
    after the object header of an SSLContext; it is checked (its options must be the
    context's) before use.
    """
    try:
        import _ssl
        import ctypes

        lib = ctypes.CDLL(_ssl.__file__)
        get_options = lib.SSL_CTX_get_options
        get_options.argtypes = [ctypes.c_void_p]
        get_options.restype = ctypes.c_uint64
        set_suites = lib.SSL_CTX_set_ciphersuites
        set_suites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        set_suites.restype = ctypes.c_int
        pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    except (ImportError, OSError, AttributeError, ValueError):
        return False
    if not pointer or get_options(pointer) != int(ctx.options):
        return False
    return bool(set_suites(pointer, _GO_TLS13_SUITES))


class CertificateAuthority:
    """The sandbox CA; the private keys never leave memory unencrypted."""

    def __init__(self, name: str = "arkouda-k8s-sandbox-ca") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem: bytes = self.cert.public_bytes(serialization.Encoding.PEM)

    def __repr__(self) -> str:
        return "CertificateAuthority(<in memory>)"

    def _issue(
        self,
        subject: x509.Name,
        public_key: Any,
        *,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
        lifetime: dt.timedelta = dt.timedelta(days=365),
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def server_context(self, service_ips: tuple[str, ...] = ()) -> ssl.SSLContext:
        """A TLS server context: our certificate, client certificates optional but verified.

        ``service_ips``: the API's in-cluster service addresses, in the certificate as
        a real API server's ClusterIP is (pods verify it by address).
        """
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
        for ip in ("127.0.0.1", *service_ips):
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        cert = self._issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            key.public_key(),
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            sans=sans,
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # ssl loads keys only from files: write the key encrypted with a one-time
        # password into a private directory on tmpfs, load it, remove it at once.
        password = secrets.token_bytes(32)
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        with tempfile.TemporaryDirectory(prefix="sandbox-tls-", dir=base) as tmp:
            os.chmod(tmp, 0o700)
            cert_path = os.path.join(tmp, "tls.crt")
            key_path = os.path.join(tmp, "tls.key")
            with open(cert_path, "wb") as f:
                f.write(cert.public_bytes(serialization.Encoding.PEM))
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.BestAvailableEncryption(password),
                    )
                )
            ctx.load_cert_chain(cert_path, key_path, password=password)
        ctx.load_verify_locations(cadata=self.ca_pem.decode())
        ctx.verify_mode = ssl.CERT_OPTIONAL
        # The chain is checked in the handshake, the validity period by the authenticator
        # (from_peercert): a real API server answers an expired client certificate with
        # 401, where OpenSSL would drop the connection (X509_V_FLAG_NO_CHECK_TIME).
        ctx.verify_flags |= _NO_CHECK_TIME
        _prefer_go_tls13_suites(ctx)
        return ctx

    def sign_client_csr(self, csr_pem: bytes, expiration_seconds: int | None = None) -> bytes:
        """Sign a PKCS#10 request for TLS client auth; subject (CN, O) taken from it.

        Raises ValueError with the reason when the request is unusable.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise ValueError(f"spec.request is not a PEM certificate request: {exc}") from None
        if not csr.is_signature_valid:
            raise ValueError("spec.request: the request's signature does not verify")
        if not csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            raise ValueError("spec.request: subject common name (the user name) is empty")
        lifetime = dt.timedelta(days=365)
        if expiration_seconds:
            lifetime = dt.timedelta(seconds=max(600, int(expiration_seconds)))
        cert = self._issue(
            csr.subject,
            csr.public_key(),
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            lifetime=lifetime,
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def issue_client(
        self, user: str, groups: Iterable[str] = (), lifetime: dt.timedelta | None = None
    ) -> tuple[bytes, bytes]:
        """A client certificate + unencrypted key PEM (in memory) for ``user``/``groups``
        (``lifetime`` below minus five minutes: one that has expired already)."""
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
        names += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        cert = self._issue(
            x509.Name(names),
            key.public_key(),
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            lifetime=lifetime if lifetime is not None else dt.timedelta(days=365),
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


# ---------------------------------------------------------------------------------------
# Authentication


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def is_admin(self) -> bool:
        return MASTERS in self.groups

    def to_dict(self) -> dict[str, Any]:
        return {"username": self.name, "uid": self.uid, "groups": list(self.groups)}


ANONYMOUS_USER = UserInfo(ANONYMOUS, (UNAUTHENTICATED,))


@dataclass
class Authenticator:
    """Bearer tokens -> users; client certificates are read from the TLS peer."""

    tokens: dict[str, UserInfo] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"Authenticator(<{len(self.tokens)} tokens>)"

    def add_token_user(self, name: str, groups: Iterable[str] = ()) -> str:
        token = secrets.token_urlsafe(32)
        all_groups = tuple(dict.fromkeys([*groups, AUTHENTICATED]))
        self.tokens[token] = UserInfo(name, all_groups, uid=secrets.token_hex(8))
        return token

    def from_token(self, token: str) -> UserInfo | None:
        # constant-time comparison per token; the table is tiny
        found = None
        # a snapshot: other threads add users (kubeconfig_for_user) while we serve
        for known, user in list(self.tokens.items()):
            if secrets.compare_digest(known.encode(), token.encode()):
                found = user
        return found

    @staticmethod
    def from_peercert(peercert: dict[str, Any] | None) -> UserInfo | None:
        """The user of a verified client certificate (ssl's peercert dict), if any."""
        if not peercert:
            return None
        now = time.time()
        if (
            not ssl.cert_time_to_seconds(peercert["notBefore"])
            <= now
            <= (ssl.cert_time_to_seconds(peercert["notAfter"]))
        ):
            raise CertificateExpired
        cn = ""
        groups: list[str] = []
        for rdn in peercert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    cn = value
                elif key == "organizationName":
                    groups.append(value)
        if not cn:
            return None
        return UserInfo(cn, tuple(dict.fromkeys([*groups, AUTHENTICATED])))


_NO_CHECK_TIME = 0x200000  # OpenSSL's X509_V_FLAG_NO_CHECK_TIME (ssl has no name for it)


class CertificateExpired(Exception):
    """A client certificate outside its validity period: the API answers 401."""


# ---------------------------------------------------------------------------------------
# Authorization (RBAC)

RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Attributes:
    """What a request wants to do, as RBAC sees it."""

    verb: str
    resource: str = ""  # plural, e.g. "pods"; empty for non-resource requests
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # non-resource requests only

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


def _subject_matches(subject: dict[str, Any], user: UserInfo, binding_ns: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return user.name == f"system:serviceaccount:{ns}:{name}"
    return False


def _rule_matches(rule: dict[str, Any], attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.is_resource:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == attrs.path:
                return True
            if url.endswith("*") and attrs.path.startswith(url[:-1]):
                return True
        return False
    groups = rule.get("apiGroups")
    if groups is None or ("*" not in groups and attrs.group not in groups):
        return False
    wanted = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    accepted = {"*", wanted}
    if attrs.subresource:
        accepted |= {f"*/{attrs.subresource}", f"{attrs.resource}/*"}
    if not accepted.intersection(rule.get("resources") or []):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _role_rules(store: Any, kind: str, name: str, namespace: str) -> list[dict[str, Any]]:
    if kind == "ClusterRole":
        role = store.get(f"clusterroles.{RBAC}", None, name)
    elif kind == "Role":
        role = store.get(f"roles.{RBAC}", namespace, name)
    else:
        role = None
    return list((role or {}).get("rules") or [])


def applicable_rules(store: Any, user: UserInfo, namespace: str) -> list[dict[str, Any]]:
    """Every RBAC rule that applies to ``user`` in ``namespace`` ("" = cluster-wide only)."""
    rules: list[dict[str, Any]] = []
    for crb in store.iter_raw(f"clusterrolebindings.{RBAC}"):
        if any(_subject_matches(s, user, "") for s in crb.get("subjects") or []):
            ref = crb.get("roleRef") or {}
            rules += _role_rules(store, ref.get("kind", ""), ref.get("name", ""), "")
    if namespace:
        for rb in store.iter_raw(f"rolebindings.{RBAC}"):
            if rb["metadata"].get("namespace") != namespace:
                continue
            if any(_subject_matches(s, user, namespace) for s in rb.get("subjects") or []):
                ref = rb.get("roleRef") or {}
                rules += _role_rules(store, ref.get("kind", ""), ref.get("name", ""), namespace)
    return rules


def authorize(store: Any, user: UserInfo, attrs: Attributes) -> bool:
    """RBAC: whether ``user`` may do ``attrs``; system:masters may do everything."""
    if user.is_admin:
        return True
    return any(_rule_matches(r, attrs) for r in applicable_rules(store, user, attrs.namespace))


def _uncovered(
    store: Any, user: UserInfo, rules: list[dict[str, Any]], namespace: str
) -> list[str]:
    """The parts of ``rules`` the user does not hold in ``namespace`` (RBAC's escalation
    check: a "*" is covered only by a "*")."""
    out = []
    for rule in rules:
        if rule.get("nonResourceURLs"):
            continue
        names = rule.get("resourceNames") or [""]
        for verb in rule.get("verbs") or []:
            for group in rule.get("apiGroups") or [""]:
                for resource in rule.get("resources") or []:
                    plural, _, sub = resource.partition("/")
                    for name in names:
                        attrs = Attributes(
                            verb=verb,
                            resource=plural,
                            group=group,
                            subresource=sub,
                            namespace=namespace,
                            name=name,
                        )
                        if not authorize(store, user, attrs):
                            out.append(
                                f'{{APIGroups:["{group}"], Resources:["{resource}"], '
                                f'Verbs:["{verb}"]}}'
                            )
    return out


def escalation_refusal(
    store: Any, user: UserInfo, resource: str, obj: dict[str, Any]
) -> str | None:
    """Why creating this Role/ClusterRole/(Cluster)RoleBinding would be an escalation
    (the real API server's wording), or None.

    A user may create a role only with rules they hold (or with the ``escalate`` verb),
    and bind a role only if they hold its rules (or have ``bind`` on it); binding a role
    that does not exist yet is refused unless they have ``bind``.
    """
    if user.is_admin:
        return None
    md = obj.get("metadata") or {}
    namespace = md.get("namespace") or ""
    plural = resource.split(".")[0]
    head = f'{resource} "{md.get("name", "")}" is forbidden: '
    who = f'user "{user.name}" (groups={list(user.groups)})'
    if plural in ("roles", "clusterroles"):
        if authorize(store, user, Attributes("escalate", plural, RBAC, namespace=namespace)):
            return None
        missing = _uncovered(store, user, list(obj.get("rules") or []), namespace)
        if missing:
            return (
                f"{head}{who} is attempting to grant RBAC permissions not currently held: "
                + " ".join(missing)
            )
        return None
    if plural in ("rolebindings", "clusterrolebindings"):
        ref = obj.get("roleRef") or {}
        kind, name = ref.get("kind", ""), ref.get("name", "")
        role_plural = "clusterroles" if kind == "ClusterRole" else "roles"
        if authorize(
            store, user, Attributes("bind", role_plural, RBAC, namespace=namespace, name=name)
        ):
            return None
        key = f"{role_plural}.{RBAC}"
        role = store.get(key, None if kind == "ClusterRole" else namespace, name)
        if role is None:
            return f'{head}{key} "{name}" not found'
        missing = _uncovered(store, user, list(role.get("rules") or []), namespace)
        if missing:
            return (
                f"{head}{who} is attempting to grant RBAC permissions not currently held: "
                + " ".join(missing)
            )
    return None


def forbidden_message(user: UserInfo, attrs: Attributes) -> str:
    """The real API server's wording of a 403."""
    if not attrs.is_resource:
        return f'forbidden: User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    what = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    shown = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    head = f'{what} "{attrs.name}"' if attrs.name else what
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'{head} is forbidden: User "{user.name}" cannot {attrs.verb} resource "{shown}" '
        f'in API group "{attrs.group}" {where}'
    )


def default_rbac() -> list[tuple[str, dict[str, Any]]]:
    """The bootstrap roles a fresh cluster has, as (store key, object)."""

    def cr(name: str, rules: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        return (
            f"clusterroles.{RBAC}",
            {
                "metadata": {
                    "name": name,
                    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                },
                "rules": rules,
            },
        )

    def crb(name: str, role: str, groups: list[str]) -> tuple[str, dict[str, Any]]:
        return (
            f"clusterrolebindings.{RBAC}",
            {
                "metadata": {
                    "name": name,
                    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                },
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": g} for g in groups],
            },
        )

    return [
        cr(
            "cluster-admin",
            [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        ),
        *[(f"clusterroles.{RBAC}", _bootstrapped(role)) for role in user_facing_roles()],
        cr(
            "system:basic-user",
            [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                },
                {
                    "apiGroups": ["authentication.k8s.io"],
                    "resources": ["selfsubjectreviews"],
                    "verbs": ["create"],
                },
            ],
        ),
        cr(
            "system:discovery",
            [
                {
                    "nonResourceURLs": [
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/openapi",
                        "/openapi/*",
                        "/version",
                        "/version/",
                        "/healthz",
                        "/livez",
                        "/readyz",
                    ],
                    "verbs": ["get"],
                }
            ],
        ),
        cr(
            "system:public-info-viewer",
            [
                {
                    "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                    "verbs": ["get"],
                }
            ],
        ),
        crb("cluster-admin", "cluster-admin", [MASTERS]),
        crb("system:basic-user", "system:basic-user", [AUTHENTICATED]),
        crb("system:discovery", "system:discovery", [AUTHENTICATED]),
        crb(
            "system:public-info-viewer",
            "system:public-info-viewer",
            [AUTHENTICATED, UNAUTHENTICATED],
        ),
    ]


def _bootstrapped(role: dict[str, Any]) -> dict[str, Any]:
    labels = {**role["metadata"].get("labels", {}), "kubernetes.io/bootstrapping": "rbac-defaults"}
    return {**role, "metadata": {**role["metadata"], "labels": labels}}


def aggregate(store: Any) -> list[dict[str, Any]]:
    """The aggregated ClusterRoles whose rules must change, with their new rules.

    Like the cluster's clusterrole-aggregation controller: an aggregated role's rules
    are the rules of every other ClusterRole its clusterRoleSelectors match, without
    repeats; roles aggregated into roles (edit into admin) settle by repetition.
    """
    key = f"clusterroles.{RBAC}"
    roles = {r["metadata"]["name"]: r for r in store.iter_raw(key)}
    rules = {name: list(r.get("rules") or []) for name, r in roles.items()}
    aggregated = [n for n, r in roles.items() if (r.get("aggregationRule") or {})]
    for _ in range(len(aggregated) + 1):
        changed = False
        for name in aggregated:
            selectors = roles[name]["aggregationRule"].get("clusterRoleSelectors") or []
            union: list[dict[str, Any]] = []
            for other, role in sorted(roles.items()):
                if other == name:
                    continue
                labels = role["metadata"].get("labels") or {}
                if any(match_label_selector_obj(sel, labels) for sel in selectors):
                    union += [r for r in rules[other] if r not in union]
            if union != rules[name]:
                rules[name], changed = union, True
        if not changed:
            break
    out = []
    for name in aggregated:
        if rules[name] != list(roles[name].get("rules") or []):
            # a copy: iter_raw gives the stored objects, which callers must not touch
            out.append(copy.deepcopy({**roles[name], "rules": rules[name]}))
    return out


def rules_review(store: Any, user: UserInfo, namespace: str) -> dict[str, Any]:
    """A SelfSubjectRulesReview status for ``user`` in ``namespace``."""
    if user.is_admin:
        rules = [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ]
    else:
        rules = applicable_rules(store, user, namespace)
    resource_rules = []
    non_resource_rules = []
    for r in rules:
        if r.get("nonResourceURLs"):
            non_resource_rules.append(
                {"verbs": list(r.get("verbs") or []), "nonResourceURLs": list(r["nonResourceURLs"])}
            )
        else:
            entry = {
                "verbs": list(r.get("verbs") or []),
                "apiGroups": list(r.get("apiGroups") or []),
                "resources": list(r.get("resources") or []),
            }
            if r.get("resourceNames"):
                entry["resourceNames"] = list(r["resourceNames"])
            resource_rules.append(entry)
    return {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }
