"""Decoding of the few protobuf request bodies kubectl sends to the sandbox.

kubectl's typed clients post protobuf (``application/vnd.kubernetes.protobuf``):
``auth can-i`` (access and rules reviews), ``certificate approve`` (a CSR's approval),
``create namespace|configmap|secret``. The sandbox carries no generated protobuf
code; this module reads the Kubernetes envelope (``k8s\\x00`` + ``runtime.Unknown``)
and those messages' fields by number (from the published ``generated.proto`` files)
into the JSON-shaped dicts the rest of the server uses. Anything else is refused
with 415 by the caller.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A protobuf body of a kind the sandbox does not decode."""


class MalformedProtobuf(ValueError):
    """A protobuf body that does not parse."""


# A schema maps field numbers to (json name, kind, repeated, sub-schema).
Field = tuple[str, str, bool, Any]
Schema = dict[int, Field]

_STRING_MAP: Schema = {1: ("key", "string", False, None), 2: ("value", "string", False, None)}
_BYTES_MAP: Schema = {1: ("key", "string", False, None), 2: ("value", "bytes", False, None)}
_TIME: Schema = {1: ("seconds", "int", False, None), 2: ("nanos", "int", False, None)}

OBJECT_META: Schema = {
    1: ("name", "string", False, None),
    2: ("generateName", "string", False, None),
    3: ("namespace", "string", False, None),
    5: ("uid", "string", False, None),
    6: ("resourceVersion", "string", False, None),
    7: ("generation", "int", False, None),
    11: ("labels", "map", False, _STRING_MAP),
    12: ("annotations", "map", False, _STRING_MAP),
    14: ("finalizers", "string", True, None),
}
TYPE_META: Schema = {1: ("apiVersion", "string", False, None), 2: ("kind", "string", False, None)}
UNKNOWN: Schema = {
    1: ("typeMeta", "msg", False, TYPE_META),
    2: ("raw", "raw", False, None),
    3: ("contentEncoding", "string", False, None),
    4: ("contentType", "string", False, None),
}
_RESOURCE_ATTRIBUTES: Schema = {
    1: ("namespace", "string", False, None),
    2: ("verb", "string", False, None),
    3: ("group", "string", False, None),
    4: ("version", "string", False, None),
    5: ("resource", "string", False, None),
    6: ("subresource", "string", False, None),
    7: ("name", "string", False, None),
}
_NON_RESOURCE_ATTRIBUTES: Schema = {
    1: ("path", "string", False, None),
    2: ("verb", "string", False, None),
}
_SAR_SPEC: Schema = {
    1: ("resourceAttributes", "msg", False, _RESOURCE_ATTRIBUTES),
    2: ("nonResourceAttributes", "msg", False, _NON_RESOURCE_ATTRIBUTES),
    3: ("user", "string", False, None),
    4: ("groups", "string", True, None),
    6: ("uid", "string", False, None),
}
_CSR_CONDITION: Schema = {
    1: ("type", "string", False, None),
    2: ("reason", "string", False, None),
    3: ("message", "string", False, None),
    4: ("lastUpdateTime", "time", False, _TIME),
    5: ("lastTransitionTime", "time", False, _TIME),
    6: ("status", "string", False, None),
}

MESSAGES: dict[tuple[str, str], Schema] = {
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): {
        1: ("metadata", "msg", False, OBJECT_META),
        2: (
            "spec",
            "msg",
            False,
            {
                1: ("resourceAttributes", "msg", False, _RESOURCE_ATTRIBUTES),
                2: ("nonResourceAttributes", "msg", False, _NON_RESOURCE_ATTRIBUTES),
            },
        ),
    },
    ("authentication.k8s.io/v1", "SelfSubjectReview"): {
        1: ("metadata", "msg", False, OBJECT_META),
    },
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): {
        1: ("metadata", "msg", False, OBJECT_META),
        2: ("spec", "msg", False, {1: ("namespace", "string", False, None)}),
    },
    ("authorization.k8s.io/v1", "SubjectAccessReview"): {
        1: ("metadata", "msg", False, OBJECT_META),
        2: ("spec", "msg", False, _SAR_SPEC),
    },
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): {
        1: ("metadata", "msg", False, OBJECT_META),
        2: ("spec", "msg", False, _SAR_SPEC),
    },
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): {
        1: ("metadata", "msg", False, OBJECT_META),
        2: (
            "spec",
            "msg",
            False,
            {
                1: ("request", "bytes", False, None),
                2: ("username", "string", False, None),
                3: ("uid", "string", False, None),
                4: ("groups", "string", True, None),
                5: ("usages", "string", True, None),
                7: ("signerName", "string", False, None),
                8: ("expirationSeconds", "int", False, None),
            },
        ),
        3: (
            "status",
            "msg",
            False,
            {
                1: ("conditions", "msg", True, _CSR_CONDITION),
                2: ("certificate", "bytes", False, None),
            },
        ),
    },
    ("v1", "Namespace"): {
        1: ("metadata", "msg", False, OBJECT_META),
        2: ("spec", "msg", False, {1: ("finalizers", "string", True, None)}),
    },
    ("v1", "ConfigMap"): {
        1: ("metadata", "msg", False, OBJECT_META),
        2: ("data", "map", False, _STRING_MAP),
        3: ("binaryData", "map", False, _BYTES_MAP),
        4: ("immutable", "bool", False, None),
    },
    ("v1", "Secret"): {
        1: ("metadata", "msg", False, OBJECT_META),
        2: ("data", "map", False, _BYTES_MAP),
        3: ("type", "string", False, None),
        4: ("stringData", "map", False, _STRING_MAP),
        5: ("immutable", "bool", False, None),
    },
}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ProtobufError("truncated field")
            out.append((number, buf[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _decode(buf: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, raw in _fields(buf):
        if number not in schema:
            continue  # fields we do not need
        name, kind, repeated, sub = schema[number]
        value: Any
        if kind == "int":
            if not isinstance(raw, int):
                raise ProtobufError(f"field {name}: expected a varint")
            value = raw
        elif kind == "bool":
            value = bool(raw)
        elif not isinstance(raw, bytes):
            raise ProtobufError(f"field {name}: expected bytes")
        elif kind == "string":
            value = raw.decode("utf-8")
        elif kind == "bytes":
            value = base64.b64encode(raw).decode()
        elif kind == "raw":
            value = raw
        elif kind == "time":
            t = _decode(raw, _TIME)
            value = datetime.fromtimestamp(t.get("seconds", 0), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif kind == "map":
            entry = _decode(raw, sub)
            out.setdefault(name, {})[entry.get("key", "")] = entry.get("value", "")
            continue
        else:
            value = _decode(raw, sub)
        if repeated:
            out.setdefault(name, []).append(value)
        elif value not in ("", 0, False) or kind == "msg":
            # Go's marshaller writes empty scalars; JSON would omit them
            out[name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as a JSON-shaped object; ProtobufError when unsupported."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic k8s\\0")
    try:
        envelope = _decode(body[len(MAGIC) :], UNKNOWN)
    except (UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise MalformedProtobuf(f"the protobuf envelope is malformed: {exc}") from None
    meta = envelope.get("typeMeta") or {}
    api_version, kind = meta.get("apiVersion", ""), meta.get("kind", "")
    schema = MESSAGES.get((api_version, kind))
    if schema is None:
        raise ProtobufError(f"protobuf bodies of {kind or 'unknown kind'} ({api_version})")
    try:
        obj = _decode(envelope.get("raw") or b"", schema)
    except (UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc:
        raise MalformedProtobuf(f"{kind} ({api_version}) body is malformed: {exc}") from None
    obj["apiVersion"] = api_version
    obj["kind"] = kind
    return obj
