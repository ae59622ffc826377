#!/usr/bin/env python3
"""A fake Kubernetes API server for extsecret's end-to-end tests, built on kmock.

Usage:
    python3 kube_standin.py [--host 127.0.0.1] [--port 0] [--port-file PATH] [--verbose]
        [--max-watch-seconds 290] [--bookmark-seconds 2] [--history 10000]
        [--extra-resource GROUP/VERSION/PLURAL/Kind[/cluster]]...

It serves plain HTTP on HOST:PORT (PORT 0 = a free port), writes the chosen port to --port-file
once it accepts connections, logs to stderr only with --verbose, and exits cleanly (open watches
are ended) on SIGTERM or SIGINT. Point a client at it with e.g.
`kube::Config::new("http://127.0.0.1:PORT".parse()?)` or `kubectl --server http://127.0.0.1:PORT`.
Requirements: `pip install 'kmock>=0.8,<0.9'` (brings aiohttp, attrs, jsonpatch); PyYAML is used
when present, only for YAML (non-JSON) apply bodies.

Resources (discovery at /api, /api/v1, /apis, /apis/GROUP, /apis/GROUP/VERSION):
  core v1: namespaces (cluster-scoped, status), secrets, configmaps, serviceaccounts (+ the `token`
  subresource: POST .../serviceaccounts/NAME/token answers a TokenRequest with a fake JWT-looking
  status.token and status.expirationTimestamp; the ServiceAccount must exist), events;
  events.k8s.io/v1 events; coordination.k8s.io/v1 leases; external-secrets.io/v1 externalsecrets
  and secretstores (namespaced) and clustersecretstores (cluster-scoped), all three with a status
  subresource. --extra-resource adds more (generic objects, no status subresource).

What kmock provides and what this file adds
-------------------------------------------
kmock (0.8) gives the HTTP server (kmock.Server over aiohttp), request parsing, the Status error
rendering, API discovery from declared resources (kmock.ResourceInfo), the in-memory object store
with per-object history (kmock.objects / ObjectsArray), the fan-out event buses (kmock.Bus) that
the watch streams read, JSON-lines streaming of async generators, and the DSL routes used for the
test control endpoints. Out of the box its emulator is too loose for kube-runtime: objects get no
uid/resourceVersion/creationTimestamp (the watcher fails with "no metadata.resourceVersion"),
lists carry resourceVersion "...", watches ignore resourceVersion/selectors/timeouts and send no
bookmarks, PUT, JSON patch, apply, status subresources, metadata-only (PartialObjectMetadata)
answers and Kubernetes' Status reasons (AlreadyExists, Conflict, ...) are missing. So the subclass
below keeps kmock's store, buses, server, discovery and error rendering but serves every resource
request itself (KubeStandin._handle). Two kmock 0.8 bugs are worked around in place: its path
parser raises on /api/v1/namespaces (wrapped, see _tolerant_parse_path) and it decodes every
request body as UTF-8 text, which fails on protobuf (KubeStandin.__call__ relabels those latin-1).

Faithful (as the real API server does it):
  - metadata.uid, creationTimestamp, namespace (from the URL), resourceVersion (one global
    increasing integer, as a string) on every object; resourceVersion changes only on a real change
    (a no-op patch/apply/update returns the object unchanged and emits no event); generation (1 on
    create, +1 on any change outside metadata and status, +1 when deletionTimestamp is set) for the
    external-secrets.io kinds only, as for CRDs; generateName.
  - get / list / create / replace (PUT) / patch / delete / deletecollection and the status
    subresource (GET/PUT/PATCH .../NAME/status change only .status and never bump generation;
    writes to the main resource ignore .status, and create drops it, for kinds with a status
    subresource). Errors are Status bodies with the real reasons: 404 NotFound, 409 AlreadyExists,
    409 Conflict (stale metadata.resourceVersion on PUT/patch/apply, failed delete preconditions,
    apply conflicts), 422 Invalid (bad names, label values, missing fieldManager on apply, base64
    in Secret data, immutable Secrets), 400 BadRequest (namespace/name/kind mismatches), 406.
  - patch types: merge-patch+json (RFC 7386), strategic-merge-patch+json (treated as a merge patch;
    `$patch`-style directives are dropped, so list merge keys are NOT honoured), json-patch+json
    (RFC 6902, all ops), apply-patch+yaml (server-side apply; fieldManager required; force; creates a
    missing object; see field ownership below).
  - server-side apply field ownership, simplified: every manager owns a set of leaf fields (lists
    are atomic, i.e. owned as one field; associative lists with merge keys are not modelled).
    Create/update/patch give the changed fields to their manager (fieldManager param, else the
    User-Agent's product name); an apply without force that would change a field owned by another
    manager gets 409 Conflict (reason Conflict, causes FieldManagerConflict) - the mechanism
    kube-lease-manager relies on; force takes the fields over; fields that a manager applied
    before and drops from its next apply are removed unless another manager owns them.
    metadata.managedFields is rendered from this (incoming managedFields are ignored).
  - Secrets: stringData is folded into base64 data on create/replace/patch/apply, type defaults to
    Opaque, data values must be valid base64, `immutable: true` and type changes are enforced.
  - list: metadata.resourceVersion = the current global one; labelSelector (k=v, k==v, k!=v, k, !k,
    k in (a,b), k notin (a,b), comma = AND) and fieldSelector (any dotted field path with =, ==, !=,
    e.g. metadata.name, metadata.namespace, type); across namespaces on the cluster-wide URL.
  - watch (watch=true|1): events after the given resourceVersion (replayed from a bounded history;
    an older resourceVersion gets an ERROR event with a 410 Expired Status, as the real server);
    resourceVersion ""/"0"/absent starts with ADDED for the current objects; sendInitialEvents=true
    ends the initial ADDED events with the k8s.io/initial-events-end BOOKMARK; BOOKMARK events every
    --bookmark-seconds with allowWatchBookmarks; the stream ends after min(timeoutSeconds,
    --max-watch-seconds); selectors are applied per event with the real server's transitions (an
    object that stops matching is sent as DELETED, one that starts matching as ADDED); watching one
    object by URL name works too. DELETED events carry a fresh resourceVersion.
  - Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1 answers get, list and
    watch with meta.k8s.io/v1 PartialObjectMetadata[List] holding only metadata (what kube-rs'
    metadata APIs and metadata_watcher ask for); as=Table (kubectl get) gets a minimal Table
    (columns Name and Created At); anything else that is not JSON gets 406.
  - delete: an object with finalizers gets deletionTimestamp (MODIFIED, HTTP 202 with the object)
    and is really deleted (DELETED) when an update empties its finalizers; otherwise it is deleted at
    once (HTTP 200 with a Status Success); preconditions (uid, resourceVersion) are checked;
    dryRun=All is honoured by every write.

Simplified or missing (not like a real cluster):
  - Garbage collection is immediate and synchronous: when an object is really deleted, every object
    whose metadata.ownerReferences names its uid (and whose other owners are all gone) is deleted
    at once (background propagation; finalizers still block; propagationPolicy=Orphan skips it,
    Foreground is treated as Background). Deleting a Namespace deletes its contents the same way;
    there is no Terminating phase. Namespaces need not exist for namespaced objects.
  - No admission, no authentication/authorization, no defaulting or schema validation beyond the
    checks above (fieldValidation is ignored; unknown fields are stored as sent); no OpenAPI
    (so `kubectl create -f`/`apply` need `--validate=false`); no aggregated discovery (kubectl
    falls back to the legacy one). Answers are always JSON. Protobuf request bodies are decoded only
    for what kubectl's typed generators send (Secret, ConfigMap, Namespace, ServiceAccount,
    TokenRequest, Lease: `kubectl create secret generic|configmap|namespace|sa|token` work); any
    other protobuf body gets 415.
  - limit/continue paginate without a consistent snapshot (a later page reflects later changes);
    list/get resourceVersion parameters
    are ignored (always the latest state); a watch from a resourceVersion newer than the current
    one simply starts from now.
  - Token requests are not validated or signed (status.token is only JWT-shaped) and bound object
    references are echoed, not checked.

Test control endpoints (not Kubernetes):
  GET  /__standin/requests        {"total": N, "by_verb": {"get": n, "list": n, "watch": n,
                                  "create": n, "update": n, "patch": n, "delete": n,
                                  "deletecollection": n}, "by_resource": {"secrets": n,
                                  "externalsecrets/status": n, ...}, "discovery": n}
                                  counting resource requests since start or the last reset
                                  (subresource requests are keyed "plural/subresource"; "total" is
                                  the sum of by_verb; discovery requests are counted apart).
  POST /__standin/requests/reset  zero the counters.
  POST /__standin/fail            {"resource": "secrets", "verb": "patch", "status": 500, "count": 3,
                                  optional "namespace", "name", "message"}: the next `count`
                                  matching requests fail with that status and a Status body
                                  (resource "plural" matches its subresources too, "plural/status"
                                  only those; verb "*" matches all; 429/503 add Retry-After: 1).
  GET  /__standin/fail            the pending failure rules; POST /__standin/fail/reset drops them.
  POST /__standin/compact         forget the watch history (watches from an older resourceVersion
                                  then get 410) and end all open watch streams.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import copy
import datetime
import json
import logging
import os
import random
import re
import signal
import string
import sys
import time
import uuid
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import parsing as _kmock_parsing

log = logging.getLogger('kube_standin')

# kmock 0.8's path parser raises on /api/v1/namespaces (the namespaces resource itself), which
# would turn every such request into a 500 before any handler runs. Resource paths are re-parsed
# by KubeStandin._handle anyway, so a failed kmock parse just means "not a kmock resource path".
_kmock_parse_path = _kmock_parsing.parse_path


def _tolerant_parse_path(path: str) -> _kmock_parsing.ParsedPath:
    try:
        return _kmock_parse_path(path)
    except ValueError:
        return _kmock_parsing.ParsedPath()


_kmock_parsing.parse_path = _tolerant_parse_path

ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']
VERB_KEYS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection']
SYSTEM_META = {'name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
               'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink'}
NAME_RE = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
LABEL_VALUE_RE = re.compile(r'^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$')
REASONS = {400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound',
           405: 'MethodNotAllowed', 406: 'NotAcceptable', 409: 'Conflict', 410: 'Gone',
           415: 'UnsupportedMediaType', 422: 'Invalid', 429: 'TooManyRequests',
           500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout'}
MISSING = object()


@attrs.frozen
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False        # has a status subresource
    generation: bool = False    # CRD-like metadata.generation
    shortnames: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f'{self.group}/{self.version}' if self.group else self.version

    @property
    def res(self) -> kmock.resource:
        return _resource(self.group, self.version, self.plural)


_RESOURCES: dict[tuple[str, str, str], kmock.resource] = {}


def _resource(group: str, version: str, plural: str) -> kmock.resource:
    # One kmock.resource instance per resource, so store keys and bus keys are identical objects.
    key = (group, version, plural)
    if key not in _RESOURCES:
        _RESOURCES[key] = kmock.resource(group, version, plural)
    return _RESOURCES[key]


ES = 'external-secrets.io'
KINDS = [
    Kind('', 'v1', 'namespaces', 'Namespace', namespaced=False, status=True, shortnames=('ns',)),
    Kind('', 'v1', 'secrets', 'Secret'),
    Kind('', 'v1', 'configmaps', 'ConfigMap', shortnames=('cm',)),
    Kind('', 'v1', 'serviceaccounts', 'ServiceAccount', shortnames=('sa',)),
    Kind('', 'v1', 'events', 'Event', shortnames=('ev',)),
    Kind('events.k8s.io', 'v1', 'events', 'Event', shortnames=('ev',)),
    Kind('coordination.k8s.io', 'v1', 'leases', 'Lease'),
    Kind(ES, 'v1', 'externalsecrets', 'ExternalSecret', status=True, generation=True,
         shortnames=('es',), categories=('external-secrets',)),
    Kind(ES, 'v1', 'secretstores', 'SecretStore', status=True, generation=True,
         shortnames=('ss',), categories=('external-secrets',)),
    Kind(ES, 'v1', 'clustersecretstores', 'ClusterSecretStore', namespaced=False, status=True,
         generation=True, shortnames=('css',), categories=('external-secrets',)),
]


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.details, self.headers = code, message, details, headers
        self.reason = reason or REASONS.get(code, 'Unknown')


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None,
                status: str = 'Failure') -> dict[str, Any]:
    body: dict[str, Any] = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {},
                            'status': status, 'message': message, 'reason': reason, 'code': code}
    if not message:
        del body['message']
    if not reason:
        del body['reason']
    if details:
        body['details'] = details
    return body


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


# ----------------------------------------------------------------------------- dict helpers

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (null deletes; non-objects replace)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strip_directives(patch: Any) -> Any:
    """Drop strategic-merge-patch directives ($patch, $setElementOrder/..., $retainKeys...)."""
    if isinstance(patch, dict):
        return {k: strip_directives(v) for k, v in patch.items() if not k.startswith('$')}
    if isinstance(patch, list):
        return [strip_directives(v) for v in patch if not (isinstance(v, dict) and '$patch' in v)]
    return patch


def leaves(obj: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Leaf fields for field ownership: dict keys are path steps, lists and {} are leaves."""
    out: dict[tuple[str, ...], Any] = {}
    for key, value in obj.items():
        if not prefix and key in ('apiVersion', 'kind'):
            continue
        if prefix == ('metadata',) and key in SYSTEM_META:
            continue
        path = prefix + (key,)
        if isinstance(value, dict) and value:
            out.update(leaves(value, path))
        else:
            out[path] = value
    return out


def remove_path(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    """Remove a leaf and the parent maps it leaves empty (top-level keys stay)."""
    parents = [obj]
    for key in path[:-1]:
        child = parents[-1].get(key)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 1, -1):
        if parents[depth] == {}:
            parents[depth - 1].pop(path[depth - 1], None)


def fields_v1(paths: set[tuple[str, ...]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for key in path:
            node = node.setdefault(f'f:{key}', {})
    return root


def field_value(obj: dict[str, Any], dotted: str) -> str:
    value: Any = obj
    for part in dotted.split('.'):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


# ----------------------------------------------------------------------------- protobuf bodies
# kubectl's typed generators (create secret/configmap/namespace/serviceaccount/token) send
# application/vnd.kubernetes.protobuf and never fall back to JSON, so the few kinds they write are
# decoded here: the "k8s\0" + runtime.Unknown envelope, then a field-number schema per kind
# (numbers from k8s.io/api's generated.proto). Empty strings and zero numbers read as "unset".

def _pb_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _pb_fields(buf: bytes) -> Any:
    i = 0
    while i < len(buf):
        key, i = _pb_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _pb_varint(buf, i)
        elif wire == 2:
            length, i = _pb_varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = buf[i:i + size], i + size
        else:
            raise ValueError(f'unsupported protobuf wire type {wire}')
        yield num, value


def _pb_decode(buf: bytes, schema: dict[int, tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for num, raw in _pb_fields(buf):
        if num not in schema:
            continue
        name, typ = schema[num]
        repeated = isinstance(typ, list)
        typ = typ[0] if repeated else typ
        if typ in ('map', 'bmap'):
            entry = dict(_pb_fields(raw))
            value = entry.get(2, b'')
            out.setdefault(name, {})[entry.get(1, b'').decode()] = (
                value.decode() if typ == 'map' else base64.b64encode(value).decode())
            continue
        if typ == 'str':
            value = raw.decode()
        elif typ == 'int':
            value = raw - (1 << 64) if raw >= 1 << 63 else raw
        elif typ == 'bool':
            value = bool(raw)
        elif typ == 'bytes':
            value = raw
        elif typ in ('time', 'microtime'):
            t = _pb_decode(raw, {1: ('s', 'int'), 2: ('n', 'int')})
            stamp = datetime.datetime.fromtimestamp(t.get('s', 0) + t.get('n', 0) / 1e9, datetime.timezone.utc)
            value = (None if not t.get('s') else stamp.strftime('%Y-%m-%dT%H:%M:%S.%fZ') if typ == 'microtime'
                     else stamp.strftime('%Y-%m-%dT%H:%M:%SZ'))
        else:
            value = _pb_decode(raw, typ)
        if repeated:
            out.setdefault(name, []).append(value)
        elif isinstance(value, (bool, bytes)) or value not in ('', 0, None, {}):
            out[name] = value
    return out


_PB_META = ('metadata', {1: ('name', 'str'), 2: ('generateName', 'str'), 3: ('namespace', 'str'),
                         5: ('uid', 'str'), 6: ('resourceVersion', 'str'), 7: ('generation', 'int'),
                         8: ('creationTimestamp', 'time'), 9: ('deletionTimestamp', 'time'),
                         10: ('deletionGracePeriodSeconds', 'int'), 11: ('labels', 'map'),
                         12: ('annotations', 'map'),
                         13: ('ownerReferences', [{1: ('kind', 'str'), 3: ('name', 'str'), 4: ('uid', 'str'),
                                                   5: ('apiVersion', 'str'), 6: ('controller', 'bool'),
                                                   7: ('blockOwnerDeletion', 'bool')}]),
                         14: ('finalizers', ['str'])})
_PB_KINDS: dict[tuple[str, str], dict[int, tuple[str, Any]]] = {
    ('v1', 'Secret'): {1: _PB_META, 2: ('data', 'bmap'), 3: ('type', 'str'), 4: ('stringData', 'map'),
                       5: ('immutable', 'bool')},
    ('v1', 'ConfigMap'): {1: _PB_META, 2: ('data', 'map'), 3: ('binaryData', 'bmap'), 4: ('immutable', 'bool')},
    ('v1', 'Namespace'): {1: _PB_META, 2: ('spec', {1: ('finalizers', ['str'])})},
    ('v1', 'ServiceAccount'): {1: _PB_META, 2: ('secrets', [{1: ('kind', 'str'), 2: ('namespace', 'str'),
                                                             3: ('name', 'str'), 4: ('uid', 'str'),
                                                             5: ('apiVersion', 'str')}]),
                               3: ('imagePullSecrets', [{1: ('name', 'str')}]),
                               4: ('automountServiceAccountToken', 'bool')},
    ('authentication.k8s.io/v1', 'TokenRequest'): {1: _PB_META, 2: ('spec', {
        1: ('audiences', ['str']), 4: ('expirationSeconds', 'int'),
        3: ('boundObjectRef', {1: ('kind', 'str'), 2: ('apiVersion', 'str'), 3: ('name', 'str'),
                               4: ('uid', 'str')})})},
    ('coordination.k8s.io/v1', 'Lease'): {1: _PB_META, 2: ('spec', {
        1: ('holderIdentity', 'str'), 2: ('leaseDurationSeconds', 'int'), 3: ('acquireTime', 'microtime'),
        4: ('renewTime', 'microtime'), 5: ('leaseTransitions', 'int'), 6: ('strategy', 'str'),
        7: ('preferredHolder', 'str')})},
}


def decode_k8s_protobuf(raw: bytes) -> dict[str, Any]:
    if not raw.startswith(b'k8s\x00'):
        raise ValueError('no k8s protobuf envelope')
    envelope = _pb_decode(raw[4:], {1: ('typeMeta', {1: ('apiVersion', 'str'), 2: ('kind', 'str')}),
                                    2: ('raw', 'bytes'), 4: ('contentType', 'str')})
    type_meta = envelope.get('typeMeta', {})
    schema = _PB_KINDS.get((type_meta.get('apiVersion', ''), type_meta.get('kind', '')))
    if schema is None:
        raise KeyError(f'{type_meta.get("apiVersion")}/{type_meta.get("kind")}')
    obj = {'apiVersion': type_meta['apiVersion'], 'kind': type_meta['kind']}
    obj.update(_pb_decode(envelope.get('raw', b''), schema))
    return obj


# ----------------------------------------------------------------------------- selectors

_REQ_RE = re.compile(r'^\s*(!)?\s*([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)|'
                     r'\s(in|notin)\s*\(([^)]*)\))?\s*$')


def parse_label_selector(text: str) -> list[tuple[str, str, Any]]:
    parts, depth, cur = [], 0, ''
    for ch in text:
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    parts.append(cur)
    reqs = []
    for part in parts:
        if not part.strip():
            continue
        m = _REQ_RE.match(part)
        if not m or (m.group(1) and (m.group(3) or m.group(5))):
            raise ApiError(400, f'unable to parse requirement: {part!r}')
        neg, key, op, value, setop, values = m.groups()
        if neg:
            reqs.append(('!', key, None))
        elif op:
            reqs.append(('!=' if op == '!=' else '=', key, value))
        elif setop:
            reqs.append((setop, key, {v.strip() for v in values.split(',') if v.strip()}))
        else:
            reqs.append(('exists', key, None))
    return reqs


def labels_match(reqs: list[tuple[str, str, Any]], labels: dict[str, str]) -> bool:
    for op, key, value in reqs:
        if op == '=' and labels.get(key) != value:
            return False
        if op == '!=' and labels.get(key) == value:
            return False
        if op == 'exists' and key not in labels:
            return False
        if op == '!' and key in labels:
            return False
        if op == 'in' and labels.get(key) not in value:
            return False
        if op == 'notin' and key in labels and labels[key] in value:
            return False
    return True


def parse_field_selector(text: str) -> list[tuple[str, str, str]]:
    reqs = []
    for part in text.split(','):
        if not part.strip():
            continue
        m = re.match(r'^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$', part)
        if not m:
            raise ApiError(400, f'invalid field selector: {part!r}')
        reqs.append((m.group(1), '!=' if m.group(2) == '!=' else '=', m.group(3)))
    return reqs


@attrs.define
class Selector:
    namespace: str | None = None
    name: str | None = None
    labels: list[tuple[str, str, Any]] = attrs.field(factory=list)
    fields: list[tuple[str, str, str]] = attrs.field(factory=list)

    def __call__(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get('metadata', {})
        if self.namespace is not None and meta.get('namespace') != self.namespace:
            return False
        if self.name is not None and meta.get('name') != self.name:
            return False
        if not labels_match(self.labels, meta.get('labels') or {}):
            return False
        for path, op, value in self.fields:
            if (field_value(obj, path) == value) != (op == '='):
                return False
        return True


# ----------------------------------------------------------------------------- state records

@attrs.frozen
class Change:
    """One watch event in the global history (and on the resource's kmock.Bus)."""
    rv: int
    kind: Kind
    type: str               # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


@attrs.frozen
class Tick:
    """Put on every bus with readers periodically: drives bookmarks, timeouts and shutdown."""
    rv: int


@attrs.define
class Owned:
    paths: set[tuple[str, ...]]
    time: str


OwnerKey = tuple[str, str, str]   # (manager, 'Apply'|'Update', subresource or '')


@attrs.define
class FailRule:
    resource: str
    verb: str
    status: int
    count: int
    namespace: str | None = None
    name: str | None = None
    message: str | None = None


# ----------------------------------------------------------------------------- the server

@attrs.define(kw_only=True)
class KubeStandin(kmock.KubernetesEmulator):
    max_watch_seconds: float = 290.0
    bookmark_seconds: float = 2.0
    tick_seconds: float = 0.5
    history_size: int = 10000
    kinds: list[Kind] = attrs.field(factory=lambda: list(KINDS))

    _kinds: dict[tuple[str, str, str], Kind] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _history: collections.deque[Change] = attrs.field(factory=collections.deque, init=False)
    _compacted: int = attrs.field(default=0, init=False)
    _owners: dict[Any, dict[OwnerKey, Owned]] = attrs.field(factory=dict, init=False)
    _counts: dict[str, Any] = attrs.field(factory=dict, init=False)
    _fail_rules: list[FailRule] = attrs.field(factory=list, init=False)
    _watch_epoch: int = attrs.field(default=0, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _ticker: asyncio.Task[None] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for kind in self.kinds:
            self._kinds[(kind.group, kind.version, kind.plural)] = kind
            subresources = set()
            if kind.status:
                subresources.add('status')
            if kind.plural == 'serviceaccounts' and kind.group == '':
                subresources.add('token')
            self.resources[kind.res] = kmock.ResourceInfo(
                kind=kind.kind, singular=kind.kind.lower(), namespaced=kind.namespaced,
                verbs=ALL_VERBS, shortnames=kind.shortnames, categories=kind.categories,
                subresources=subresources)
        self._reset_counts()
        # Test control endpoints, as kmock DSL reactions (they win over kmock's fallbacks).
        self['get /__standin/requests'] << (lambda: self._counts)
        self['post /__standin/requests/reset'] << (lambda: self._reset_counts() or {'ok': True})
        self['get /__standin/fail'] << (lambda: [attrs.asdict(r) for r in self._fail_rules])
        self['post /__standin/fail/reset'] << (lambda: self._fail_rules.clear() or {'ok': True})
        self['post /__standin/fail'] << self._ctl_fail
        self['post /__standin/compact'] << self._ctl_compact

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> KubeStandin:
        await super().__aenter__()
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await super().__aexit__(*exc)

    async def close_watches(self) -> None:
        """End every open watch stream at its next tick (for shutdown)."""
        self._closing = True
        await self._tick()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            await self._tick()

    async def _tick(self) -> None:
        async with self._lock:
            tick = Tick(self._rv)
            for bus in list(self._buses.values()):
                if bus.consumer_count:
                    await bus.put(tick)

    # --- control endpoints --------------------------------------------------------------------

    def _reset_counts(self) -> None:
        self._counts = {'total': 0, 'by_verb': {verb: 0 for verb in VERB_KEYS},
                        'by_resource': {}, 'discovery': 0}

    def _ctl_fail(self, request: kmock.Request) -> Any:
        data = json.loads(request.body or b'{}')
        rule = FailRule(resource=str(data.get('resource', '*')), verb=str(data.get('verb', '*')),
                        status=int(data.get('status', 500)), count=int(data.get('count', 1)),
                        namespace=data.get('namespace'), name=data.get('name'),
                        message=data.get('message'))
        self._fail_rules.append(rule)
        return {'ok': True, 'rule': attrs.asdict(rule)}

    async def _ctl_compact(self) -> Any:
        async with self._lock:
            self._history.clear()
            self._compacted = self._rv
            self._watch_epoch += 1
        await self._tick()
        return {'ok': True, 'compacted': str(self._compacted)}

    def _take_failure(self, plural: str, sub: str | None, verb: str, ns: str | None,
                      name: str | None) -> FailRule | None:
        for rule in self._fail_rules:
            if rule.resource not in ('*', plural, f'{plural}/{sub}' if sub else plural):
                continue
            if rule.verb not in ('*', verb):
                continue
            if rule.namespace is not None and rule.namespace != ns:
                continue
            if rule.name is not None and rule.name != name:
                continue
            rule.count -= 1
            if rule.count <= 0:
                self._fail_rules.remove(rule)
            return rule
        return None

    # --- discovery tweaks ----------------------------------------------------------------------

    async def _serve_version(self, request: kmock.Request) -> Any:
        # kmock gives subresources their parent's kind and verbs and calls core "/v1"; fix those.
        result = await super()._serve_version(request)
        if isinstance(result, dict):
            if result.get('groupVersion', '').startswith('/'):
                result['groupVersion'] = result['groupVersion'][1:]
            for entry in result.get('resources', []):
                entry['verbs'] = sorted(entry['verbs'])
                if entry.get('namespaced') is None:
                    entry['namespaced'] = True
                if entry['name'].endswith('/status'):
                    entry.update(verbs=['get', 'patch', 'update'], shortNames=[], categories=[])
                elif entry['name'].endswith('/token'):
                    entry.update(kind='TokenRequest', group='authentication.k8s.io', version='v1',
                                 verbs=['create'], shortNames=[], categories=[], singularName='')
            result['resources'].sort(key=lambda e: e['name'])
        return result

    async def _serve_server_version(self, request: kmock.Request) -> Any:
        return {'major': '1', 'minor': '33', 'gitVersion': 'v1.33.0-kube-standin',
                'gitCommit': '0' * 40, 'gitTreeState': 'clean', 'buildDate': '2025-01-01T00:00:00Z',
                'goVersion': 'go1.24', 'compiler': 'gc', 'platform': 'linux/amd64'}

    # --- request entry ------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock decodes every body as text (UTF-8 unless the Content-Type names a charset), which
        # fails on binary protobuf bodies; latin-1 decodes any bytes, and request.body stays raw.
        ctype = raw_request.headers.get('Content-Type', '')
        if ('protobuf' in ctype or 'cbor' in ctype) and 'charset' not in ctype:
            headers = raw_request.headers.copy()
            headers['Content-Type'] = f'{ctype}; charset=latin-1'
            raw_request = raw_request.clone(headers=headers)
        return await super().__call__(raw_request)

    def _parse_api_path(self, path: str) -> tuple[Kind | None, tuple[str, str, str], str | None,
                                                  str | None, str | None] | None:
        parts = [p for p in path.split('/') if p]
        if len(parts) >= 3 and parts[0] == 'api':
            group, version, rest = '', parts[1], parts[2:]
        elif len(parts) >= 4 and parts[0] == 'apis':
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        if rest[0] == 'namespaces' and len(rest) >= 3 and (group, version, rest[2]) in self._kinds:
            namespace, rest = rest[1], rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = '/'.join(rest[2:]) or None
        return self._kinds.get((group, version, plural)), (group, version, plural), namespace, name, sub

    async def _handle(self, request: kmock.Request) -> Any:
        # kmock keeps every request for assertions; a long-running server trims that list.
        if len(self._requests) > 2000:
            del self._requests[:1000]
        parsed = self._parse_api_path(request.url.path)
        if parsed is None:
            if request.url.path.startswith(('/api', '/openapi')):
                self._counts['discovery'] += 1
            # Discovery, /version and the control endpoints: kmock's scaffold & DSL (skipping the
            # stateful emulator interception, whose semantics are replaced by _serve_resource).
            return await kmock.KubernetesScaffold._handle(self, request)
        kind, gvp, ns, name, sub = parsed
        method = request.method.value.upper()
        params = dict(request.params)
        if method == 'GET':
            verb = 'watch' if params.get('watch') in ('true', '1') else 'get' if name else 'list'
        else:
            verb = {'POST': 'create', 'PUT': 'update', 'PATCH': 'patch',
                    'DELETE': 'delete' if name else 'deletecollection'}.get(method, method.lower())
        counted_resource = f'{gvp[2]}/{sub}' if sub else gvp[2]
        self._counts['total'] += 1
        self._counts['by_verb'][verb] = self._counts['by_verb'].get(verb, 0) + 1
        self._counts['by_resource'][counted_resource] = self._counts['by_resource'].get(counted_resource, 0) + 1
        started = time.monotonic()
        if verb == 'watch':
            log.info('%s %s [accept %s] -> watch stream opened', method, request.url.path_qs,
                     self._header(request, 'accept'))
        try:
            rule = self._take_failure(gvp[2], sub, verb, ns, name)
            if rule is not None:
                headers = {'Retry-After': '1'} if rule.status in (429, 503) else None
                raise ApiError(rule.status, rule.message or f'injected failure for {verb} {counted_resource}',
                               headers=headers)
            if kind is None:
                raise ApiError(404, 'the server could not find the requested resource')
            response = await self._serve_resource(request, kind, verb, ns, name, sub, params)
        except ApiError as e:
            body = status_body(e.code, e.reason, e.message, e.details)
            response = await kmock.Response(status=e.code, payload=body, headers=e.headers)(request)
        if log.isEnabledFor(logging.INFO):
            ctype = self._header(request, 'content-type')
            log.info('%s %s%s -> %s (%.1f ms)', method, request.url.path_qs,
                     f' [{ctype}]' if ctype else '', response.status, (time.monotonic() - started) * 1000)
        return response

    async def _serve_resource(self, request: kmock.Request, kind: Kind, verb: str, ns: str | None,
                              name: str | None, sub: str | None, params: dict[str, str]) -> Any:
        if kind.namespaced is False and ns is not None:
            raise ApiError(404, 'the server could not find the requested resource')
        if sub is not None and name is None:
            raise ApiError(404, 'the server could not find the requested resource')
        if sub not in (None, 'status', 'token') or (sub == 'status' and not kind.status) or \
                (sub == 'token' and kind.plural != 'serviceaccounts'):
            raise ApiError(404, 'the server could not find the requested resource')
        if sub == 'token' and verb != 'create' or sub == 'status' and verb not in ('get', 'update', 'patch'):
            raise ApiError(405, f'{verb} is not supported on {kind.plural}/{sub}', reason='MethodNotAllowed')
        fmt = self._negotiate(request, verb)
        dry_run = params.get('dryRun') == 'All'
        manager = params.get('fieldManager') or self._default_manager(request)
        if verb in ('list', 'watch', 'deletecollection'):
            selector = Selector(namespace=ns, name=name)
            if params.get('labelSelector'):
                selector.labels = parse_label_selector(params['labelSelector'])
            if params.get('fieldSelector'):
                selector.fields = parse_field_selector(params['fieldSelector'])
            if verb == 'list':
                return await self._list(request, kind, selector, fmt, params)
            if verb == 'watch':
                return await self._watch(request, kind, selector, params, fmt)
            return await self._delete_collection(request, kind, selector, params, dry_run)
        if kind.namespaced and ns is None and (verb == 'create' or name is not None):
            raise ApiError(404, 'the server could not find the requested resource')
        if verb == 'get':
            obj = self._live(kind, ns, name)
            if obj is None:
                raise self._not_found(kind, name)
            return await self._respond(request, 200, self._format(kind, obj, fmt))
        body = self._body(request, verb)
        if sub == 'token':
            return await self._token(request, kind, ns, name, body)
        if verb == 'create':
            obj = await self._create(kind, ns, body, manager, dry_run)
            return await self._respond(request, 201, self._format(kind, obj, fmt))
        if verb == 'update':
            _, obj = await self._update(kind, ns, name, sub, body, manager, dry_run)
            return await self._respond(request, 200, self._format(kind, obj, fmt))
        if verb == 'patch':
            code, obj = await self._patch(request, kind, ns, name, sub, body, params, manager, dry_run)
            return await self._respond(request, code, self._format(kind, obj, fmt))
        if verb == 'delete':
            code, obj = await self._delete(kind, ns, name, body, params, dry_run)
            return await self._respond(request, code, self._format(kind, obj, fmt) if code == 202 else obj)
        raise ApiError(405, 'the server does not allow this method on the requested resource',
                       reason='MethodNotAllowed')

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    async def _respond(request: kmock.Request, code: int, payload: Any) -> Any:
        return await kmock.Response(status=code, payload=payload)(request)

    @staticmethod
    def _default_manager(request: kmock.Request) -> str:
        for key, value in request.headers.items():
            if key.lower() == 'user-agent' and value:
                return value.split('/')[0].split(' ')[0] or 'unknown'
        return 'unknown'

    @staticmethod
    def _header(request: kmock.Request, name: str) -> str:
        for key, value in request.headers.items():
            if key.lower() == name:
                return value
        return ''

    def _negotiate(self, request: kmock.Request, verb: str) -> str:
        accept = self._header(request, 'accept')
        if not accept:
            return 'json'
        for media in accept.split(','):
            parts = [p.strip() for p in media.split(';')]
            mtype, opts = parts[0].lower(), dict(p.split('=', 1) for p in parts[1:] if '=' in p)
            if mtype not in ('application/json', 'application/*', '*/*', 'application/json-seq'):
                continue
            as_ = opts.get('as')
            if as_ is None:
                return 'json'
            if opts.get('g') != 'meta.k8s.io':
                continue
            if as_ in ('PartialObjectMetadata', 'PartialObjectMetadataList') and opts.get('v') in ('v1', 'v1beta1'):
                return 'meta'
            if as_ == 'Table' and verb in ('get', 'list', 'watch'):
                return 'table'
        raise ApiError(406, f'only the following media types are accepted: application/json, '
                            f'application/yaml (not: {accept})', reason='NotAcceptable')

    def _format(self, kind: Kind, obj: dict[str, Any], fmt: str) -> dict[str, Any]:
        if fmt == 'meta':
            return {'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/v1',
                    'metadata': obj.get('metadata', {})}
        if fmt == 'table':
            return self._table(kind, [obj], None)
        return obj

    def _table(self, kind: Kind, objs: list[dict[str, Any]], rv: str | None) -> dict[str, Any]:
        cols = [{'name': 'Name', 'type': 'string', 'format': 'name', 'description': 'Name', 'priority': 0},
                {'name': 'Created At', 'type': 'date', 'format': '', 'description': 'creationTimestamp',
                 'priority': 0}]
        return {'kind': 'Table', 'apiVersion': 'meta.k8s.io/v1',
                'metadata': {'resourceVersion': rv} if rv else {},
                'columnDefinitions': cols,
                'rows': [{'cells': [o['metadata'].get('name'), o['metadata'].get('creationTimestamp')],
                          'object': {'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/v1',
                                     'metadata': o['metadata']}} for o in objs]}

    def _body(self, request: kmock.Request, verb: str) -> Any:
        ctype = self._header(request, 'content-type').split(';')[0].strip().lower()
        raw = request.body or b''
        if ctype == 'application/vnd.kubernetes.protobuf':
            try:
                return decode_k8s_protobuf(raw)
            except (KeyError, ValueError, IndexError) as e:
                raise ApiError(415, f'the stand-in cannot decode this protobuf body ({e}); send JSON',
                               reason='UnsupportedMediaType') from None
        if 'protobuf' in ctype or 'cbor' in ctype:
            raise ApiError(415, 'the body of the request was in an unknown format - accepted media '
                                'types include: application/json, application/yaml', reason='UnsupportedMediaType')
        if not raw.strip():
            if verb == 'delete':
                return {}
            raise ApiError(400, 'the request body is empty')
        try:
            return json.loads(raw)
        except ValueError:
            pass
        try:
            import yaml  # only for YAML apply bodies
            return yaml.safe_load(raw)
        except Exception:
            raise ApiError(400, 'the request body is neither valid JSON nor YAML') from None

    def _key(self, kind: Kind, ns: str | None, name: str) -> tuple[kmock.resource, str | None, str]:
        return (kind.res, ns if kind.namespaced else None, name)

    def _live(self, kind: Kind, ns: str | None, name: str | None) -> dict[str, Any] | None:
        key = self._key(kind, ns, name or '')
        if key not in self._objects:
            return None
        stored = self._objects[key]
        return None if stored.deleted else copy.deepcopy(stored.last.raw)

    def _all_live(self) -> list[tuple[Kind, dict[str, Any]]]:
        by_res = {kind.res: kind for kind in self._kinds.values()}
        return [(by_res[key[0]], obj.last.raw) for key, obj in self._objects.items()
                if not obj.deleted and key[0] in by_res]

    @staticmethod
    def _not_found(kind: Kind, name: str | None) -> ApiError:
        return ApiError(404, f'{kind.plural}{"." + kind.group if kind.group else ""} "{name}" not found',
                        details={'name': name, 'group': kind.group, 'kind': kind.plural})

    @staticmethod
    def _invalid(kind: Kind, name: str | None, field: str, message: str) -> ApiError:
        return ApiError(422, f'{kind.kind} "{name}" is invalid: {field}: {message}', reason='Invalid',
                        details={'name': name, 'group': kind.group, 'kind': kind.kind,
                                 'causes': [{'reason': 'FieldValueInvalid', 'message': message,
                                             'field': field}]})

    @staticmethod
    def _conflict(kind: Kind, name: str | None) -> ApiError:
        return ApiError(409, f'Operation cannot be fulfilled on {kind.plural}'
                             f'{"." + kind.group if kind.group else ""} "{name}": the object has been '
                             f'modified; please apply your changes to the latest version and try again',
                        details={'name': name, 'group': kind.group, 'kind': kind.plural})

    # --- list & watch -------------------------------------------------------------------------

    async def _list(self, request: kmock.Request, kind: Kind, selector: Selector, fmt: str,
                    params: dict[str, str] | None = None) -> Any:
        params = params or {}
        async with self._lock:
            rv = str(self._rv)
            objs = [obj for k, obj in self._all_live() if k is kind and selector(obj)]
        objs.sort(key=lambda o: (o['metadata'].get('namespace') or '', o['metadata']['name']))
        # Pagination as the real server: `limit` items, and a `continue` token for the rest (here
        # the offset and the list's resourceVersion; a consistent snapshot is not modelled).
        cont_token = params.get('continue') or ''
        start = 0
        if cont_token:
            try:
                start_s, rv = cont_token.split('.', 1)
                start = int(start_s)
            except ValueError:
                raise ApiError(400, 'invalid continue token') from None
        limit = int(params.get('limit') or 0) if (params.get('limit') or '').isdigit() else 0
        more = ''
        if limit > 0 and start + limit < len(objs):
            more = f'{start + limit}.{rv}'
            objs = objs[start:start + limit]
        else:
            objs = objs[start:]
        if fmt == 'table':
            return await self._respond(request, 200, self._table(kind, objs, rv))
        if fmt == 'meta':
            body = {'kind': 'PartialObjectMetadataList', 'apiVersion': 'meta.k8s.io/v1',
                    'metadata': {'resourceVersion': rv}, 'items': [self._format(kind, o, fmt) for o in objs]}
        else:
            body = {'kind': f'{kind.kind}List', 'apiVersion': kind.api_version,
                    'metadata': {'resourceVersion': rv}, 'items': objs}
        if more:
            body['metadata']['continue'] = more
        return await self._respond(request, 200, body)

    async def _watch(self, request: kmock.Request, kind: Kind, selector: Selector,
                     params: dict[str, str], fmt: str) -> Any:
        loop = asyncio.get_running_loop()
        try:
            timeout = float(params.get('timeoutSeconds') or self.max_watch_seconds)
        except ValueError:
            raise ApiError(400, 'invalid timeoutSeconds') from None
        timeout = max(0.0, min(timeout, self.max_watch_seconds))
        bookmarks = params.get('allowWatchBookmarks') in ('true', '1')
        initial_end = params.get('sendInitialEvents') in ('true', '1')
        since = params.get('resourceVersion') or ''
        if since and not since.isdigit():
            raise ApiError(400, f'invalid resourceVersion: {since!r}')
        bus = self._buses[kind.res]
        async with self._lock:
            marker = await bus.mark()
            current, epoch = self._rv, self._watch_epoch
            gone = None
            backlog: list[Change | dict[str, Any]] = []
            if since in ('', '0') or initial_end:
                for k, obj in self._all_live():
                    if k is kind and selector(obj):
                        backlog.append(Change(int(obj['metadata']['resourceVersion']), kind, 'ADDED', obj, None))
                backlog.sort(key=lambda c: c.rv)
            elif int(since) < self._compacted:
                gone = int(since)
            else:
                backlog.extend(c for c in self._history if c.rv > int(since) and c.kind is kind)

        def bookmark(rv: int, end: bool = False) -> dict[str, Any]:
            meta: dict[str, Any] = {'resourceVersion': str(rv)}
            if end:
                meta['annotations'] = {'k8s.io/initial-events-end': 'true'}
            api_version, kind_name = (('meta.k8s.io/v1', 'PartialObjectMetadata') if fmt == 'meta'
                                      else (kind.api_version, kind.kind))
            return {'type': 'BOOKMARK', 'object': {'kind': kind_name, 'apiVersion': api_version,
                                                   'metadata': meta}}

        def render(change: Change) -> dict[str, Any] | None:
            now_match = selector(change.obj)
            if change.type == 'MODIFIED':
                was_match = selector(change.old)
                if now_match and was_match:
                    etype, obj = 'MODIFIED', change.obj
                elif now_match:
                    etype, obj = 'ADDED', change.obj
                elif was_match:
                    obj = copy.deepcopy(change.old)
                    obj['metadata']['resourceVersion'] = change.obj['metadata']['resourceVersion']
                    etype = 'DELETED'
                else:
                    return None
            elif now_match:
                etype, obj = change.type, change.obj
            else:
                return None
            return {'type': etype, 'object': self._format(kind, obj, fmt)}

        raw_request = request._raw_request

        async def stream() -> Any:
            try:
                yield b''   # send the headers at once, even if nothing happens for a while
                if gone is not None:
                    yield {'type': 'ERROR', 'object': status_body(
                        410, 'Expired', f'too old resource version: {gone} ({self._compacted})')}
                    return
                for change in backlog:
                    event = render(change) if isinstance(change, Change) else change
                    if event is not None:
                        yield event
                if initial_end:
                    yield bookmark(current, end=True)
                deadline = loop.time() + timeout
                last_bookmark = loop.time()
                async with contextlib.aclosing(bus.stream(since=marker)) as items:
                    async for item in items:
                        now = loop.time()
                        if isinstance(item, Tick):
                            transport = raw_request.transport if raw_request is not None else None
                            if (self._closing or epoch != self._watch_epoch or now >= deadline
                                    or transport is None or transport.is_closing()):
                                return
                            if bookmarks and now - last_bookmark >= self.bookmark_seconds:
                                last_bookmark = now
                                yield bookmark(item.rv)
                            continue
                        if isinstance(item, Change) and item.rv > current:
                            event = render(item)
                            if event is not None:
                                yield event
                        if now >= deadline:
                            return
            finally:
                with contextlib.suppress(ValueError):
                    await bus.unmark(marker)

        return await kmock.Response(headers={'Content-Type': 'application/json'}, payload=stream())(request)

    # --- writes -------------------------------------------------------------------------------

    def _check_body_type(self, kind: Kind, body: Any, required: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, 'the request body must be a JSON object')
        api_version, kind_name = body.get('apiVersion'), body.get('kind')
        if required and (not api_version or not kind_name):
            raise ApiError(400, 'apiVersion and kind must be set in an apply patch')
        if (api_version and api_version != kind.api_version) or (kind_name and kind_name != kind.kind):
            raise ApiError(400, f'the API version/kind in the data ({api_version}/{kind_name}) does not '
                                f'match the expected {kind.api_version}/{kind.kind}')
        return body

    def _sanitize_input(self, kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        body['apiVersion'], body['kind'] = kind.api_version, kind.kind
        meta = body.setdefault('metadata', {})
        if not isinstance(meta, dict):
            raise ApiError(400, 'metadata must be an object')
        meta.pop('managedFields', None)
        for field in ('labels', 'annotations'):
            value = meta.get(field)
            if value is not None and (not isinstance(value, dict) or
                                      not all(isinstance(v, str) for v in value.values())):
                raise ApiError(400, f'metadata.{field} must be a map of strings')
        if kind.kind == 'Secret' and kind.group == '':
            string_data = body.pop('stringData', None) or {}
            if not isinstance(string_data, dict) or not all(isinstance(v, str) for v in string_data.values()):
                raise ApiError(400, 'stringData must be a map of strings')
            if string_data:
                data = body.get('data') or {}
                for key, value in string_data.items():
                    data[key] = base64.b64encode(value.encode()).decode()
                body['data'] = data
        return body

    def _validate(self, kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        meta = obj['metadata']
        name = meta.get('name')
        if not name or len(name) > 253 or not NAME_RE.match(name):
            raise self._invalid(kind, name, 'metadata.name',
                                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                                f'lower case alphanumeric characters, \'-\' or \'.\', and must start and '
                                f'end with an alphanumeric character')
        for key, value in (meta.get('labels') or {}).items():
            if len(value) > 63 or not LABEL_VALUE_RE.match(value):
                raise self._invalid(kind, name, f'metadata.labels[{key}]', f'Invalid value: "{value}": a valid '
                                    f'label must be an empty string or consist of alphanumeric characters, '
                                    f'\'-\', \'_\' or \'.\', and must start and end with an alphanumeric '
                                    f'character')
        if kind.kind == 'Secret' and kind.group == '':
            obj.setdefault('type', 'Opaque')
            data = obj.get('data') or {}
            if not isinstance(data, dict):
                raise ApiError(400, 'data must be a map of base64 strings')
            for key, value in data.items():
                try:
                    if not isinstance(value, str):
                        raise ValueError
                    base64.b64decode(value, validate=True)
                except ValueError:
                    raise ApiError(400, f'Secret in version "v1" cannot be handled as a Secret: '
                                        f'illegal base64 data in data[{key!r}]') from None
            if old is not None:
                if old.get('type', 'Opaque') != obj.get('type'):
                    raise self._invalid(kind, name, 'type', 'Invalid value: field is immutable')
                if old.get('immutable') and (old.get('data') != obj.get('data') or not obj.get('immutable')):
                    raise self._invalid(kind, name, 'data', 'Forbidden: field is immutable when '
                                        '`immutable` is set')

    def _finish(self, kind: Kind, old: dict[str, Any] | None, new: dict[str, Any], sub: str | None
                ) -> dict[str, Any]:
        """Restore what clients cannot change, apply subresource rules, set generation."""
        new['apiVersion'], new['kind'] = kind.api_version, kind.kind
        meta = new.setdefault('metadata', {})
        if old is not None:
            old_meta = old['metadata']
            if sub == 'status':
                status = new.get('status')
                new = copy.deepcopy(old)
                if status is None:
                    new.pop('status', None)
                else:
                    new['status'] = status
                meta = new['metadata']
            elif kind.status:
                if 'status' in old:
                    new['status'] = copy.deepcopy(old['status'])
                else:
                    new.pop('status', None)
            for field in ('uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds',
                          'generation', 'name', 'namespace'):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            if kind.generation and sub != 'status':
                strip = lambda o: {k: v for k, v in o.items() if k not in ('metadata', 'status')}
                if strip(old) != strip(new):
                    meta['generation'] = int(old_meta.get('generation', 1)) + 1
        else:
            if kind.status:
                new.pop('status', None)
                if kind.kind == 'Namespace':
                    new['status'] = {'phase': 'Active'}
            if kind.generation:
                meta['generation'] = 1
        if not kind.namespaced:
            meta.pop('namespace', None)
        meta.pop('managedFields', None)
        return new

    def _own(self, kind: Kind, key: Any, old: dict[str, Any] | None, new: dict[str, Any],
             manager: str, op: str, sub: str | None, applied: set[tuple[str, ...]] | None
             ) -> dict[OwnerKey, Owned]:
        """Next field-ownership table for a write (see the module docstring)."""
        owners = {k: Owned(set(v.paths), v.time) for k, v in (self._owners.get(key) or {}).items()} \
            if old is not None else {}
        new_leaves = leaves(new)
        old_leaves = leaves(old) if old is not None else {}
        me: OwnerKey = (manager, op, sub or '')
        if applied is not None:
            # Fields this apply touched and changed move to it (only reachable with force=true).
            for k, owned in owners.items():
                if k[0] != manager:
                    owned.paths -= {p for p in owned.paths
                                    if any(p[:i] in applied for i in range(1, len(p) + 1))
                                    and new_leaves.get(p, MISSING) != old_leaves.get(p, MISSING)}
            mine = {p for p in applied if p in new_leaves}
        else:
            changed = {p for p, v in new_leaves.items() if old_leaves.get(p, MISSING) != v}
            for k, owned in owners.items():
                if k != me:
                    owned.paths -= changed
            mine = (owners[me].paths if me in owners else set()) | changed
        stamp = now_iso()
        if mine:
            owners[me] = Owned(mine, owners[me].time if me in owners and owners[me].paths == mine else stamp)
        else:
            owners.pop(me, None)
        result = {}
        for k, owned in owners.items():
            paths = {p for p in owned.paths if p in new_leaves}
            if paths:
                result[k] = Owned(paths, owned.time if paths == owned.paths else stamp)
        return result

    def _render_owners(self, kind: Kind, obj: dict[str, Any], owners: dict[OwnerKey, Owned]) -> None:
        entries = []
        for (manager, op, sub), owned in owners.items():
            entry = {'manager': manager, 'operation': op, 'apiVersion': kind.api_version,
                     'time': owned.time, 'fieldsType': 'FieldsV1', 'fieldsV1': fields_v1(owned.paths)}
            if sub:
                entry['subresource'] = sub
            entries.append(entry)
        if entries:
            obj['metadata']['managedFields'] = entries
        else:
            obj['metadata'].pop('managedFields', None)

    async def _commit(self, kind: Kind, key: Any, old: dict[str, Any] | None,
                      new: dict[str, Any] | None, owners: dict[OwnerKey, Owned] | None = None
                      ) -> dict[str, Any]:
        """Store a new version (or the deletion), bump the resourceVersion, publish the event.
        The caller holds self._lock."""
        self._rv += 1
        if new is None:
            assert old is not None
            final = copy.deepcopy(old)
            final['metadata']['resourceVersion'] = str(self._rv)
            self._objects[key].delete()
            self._owners.pop(key, None)
            change = Change(self._rv, kind, 'DELETED', final, None)
        else:
            new['metadata']['resourceVersion'] = str(self._rv)
            if key in self._objects:
                stored = self._objects[key]
                stored.history.append(new)
                if len(stored.history) > 8:
                    del stored.history[:-8]
            else:
                self._objects[key] = new
            if owners is not None:
                self._owners[key] = owners
            change = Change(self._rv, kind, 'ADDED' if old is None else 'MODIFIED', new, old)
        if len(self._history) >= self.history_size:
            self._compacted = self._history.popleft().rv
        self._history.append(change)
        await self._buses[kind.res].put(change)
        return change.obj

    async def _write(self, kind: Kind, ns: str | None, name: str, old: dict[str, Any] | None,
                     new: dict[str, Any], sub: str | None, manager: str, op: str,
                     applied: set[tuple[str, ...]] | None, dry_run: bool) -> tuple[int, dict[str, Any]]:
        """Common tail of create/update/patch/apply. The caller holds self._lock."""
        new = self._finish(kind, old, new, sub)
        if ns is not None and kind.namespaced:
            new['metadata']['namespace'] = ns
        self._validate(kind, new, old)
        key = self._key(kind, ns, name)
        owners = self._own(kind, key, old, new, manager, op, sub, applied)
        self._render_owners(kind, new, owners)
        if old is not None:
            new['metadata']['resourceVersion'] = old['metadata']['resourceVersion']
            if new == old:
                return 200, old   # a no-op: no new resourceVersion, no event
        else:
            new['metadata'].update(uid=str(uuid.uuid4()), creationTimestamp=now_iso())
        if dry_run:
            return (201 if old is None else 200), new
        meta = new['metadata']
        if old is not None and meta.get('deletionTimestamp') and not meta.get('finalizers'):
            await self._commit(kind, key, old, new, owners)
            await self._commit(kind, key, new, None)
            await self._collect_garbage(kind, new)
            return 200, new
        return (201 if old is None else 200), await self._commit(kind, key, old, new, owners)

    async def _create(self, kind: Kind, ns: str | None, body: Any, manager: str, dry_run: bool) -> dict[str, Any]:
        body = self._sanitize_input(kind, self._check_body_type(kind, body, required=False))
        meta = body['metadata']
        if meta.get('resourceVersion'):
            raise ApiError(400, 'resourceVersion should not be set on objects to be created')
        if kind.namespaced and meta.get('namespace') not in (None, '', ns):
            raise ApiError(400, 'the namespace of the provided object does not match the namespace '
                                'sent on the request')
        if not meta.get('name') and meta.get('generateName'):
            meta['name'] = meta['generateName'] + ''.join(random.choices(string.ascii_lowercase + string.digits, k=5))
        for field in SYSTEM_META - {'name', 'namespace'}:
            meta.pop(field, None)
        async with self._lock:
            if self._live(kind, ns, meta.get('name')) is not None:
                raise ApiError(409, f'{kind.plural}{"." + kind.group if kind.group else ""} '
                                    f'"{meta["name"]}" already exists', reason='AlreadyExists',
                               details={'name': meta['name'], 'group': kind.group, 'kind': kind.plural})
            _, obj = await self._write(kind, ns, meta.get('name') or '', None, body, None, manager,
                                       'Update', None, dry_run)
        return obj

    def _check_target(self, kind: Kind, ns: str | None, name: str, body: dict[str, Any]) -> None:
        meta = body.get('metadata') or {}
        if meta.get('name') not in (None, name):
            raise ApiError(400, f'the name of the object ({meta.get("name")}) does not match the name '
                                f'on the URL ({name})')
        if kind.namespaced and meta.get('namespace') not in (None, '', ns):
            raise ApiError(400, 'the namespace of the provided object does not match the namespace '
                                'sent on the request')

    @staticmethod
    def _check_rv(kind: Kind, old: dict[str, Any], new: dict[str, Any], name: str) -> None:
        rv = (new.get('metadata') or {}).get('resourceVersion')
        if rv and rv != old['metadata']['resourceVersion']:
            raise KubeStandin._conflict(kind, name)

    async def _update(self, kind: Kind, ns: str | None, name: str, sub: str | None, body: Any,
                      manager: str, dry_run: bool) -> tuple[int, dict[str, Any]]:
        body = self._sanitize_input(kind, self._check_body_type(kind, body, required=False))
        self._check_target(kind, ns, name, body)
        async with self._lock:
            old = self._live(kind, ns, name)
            if old is None:
                raise self._not_found(kind, name)
            self._check_rv(kind, old, body, name)
            return await self._write(kind, ns, name, old, body, sub, manager, 'Update', None, dry_run)

    async def _patch(self, request: kmock.Request, kind: Kind, ns: str | None, name: str,
                     sub: str | None, body: Any, params: dict[str, str], manager: str, dry_run: bool
                     ) -> tuple[int, dict[str, Any]]:
        ctype = self._header(request, 'content-type').split(';')[0].strip().lower()
        if ctype == 'application/apply-patch+yaml':
            return await self._apply(kind, ns, name, sub, body, params, dry_run)
        if ctype not in ('application/merge-patch+json', 'application/strategic-merge-patch+json',
                         'application/json-patch+json'):
            raise ApiError(415, 'the body of the request was in an unknown format - accepted media types '
                                'include: application/json-patch+json, application/merge-patch+json, '
                                'application/apply-patch+yaml', reason='UnsupportedMediaType')
        async with self._lock:
            old = self._live(kind, ns, name)
            if old is None:
                raise self._not_found(kind, name)
            if ctype == 'application/json-patch+json':
                if not isinstance(body, list):
                    raise ApiError(400, 'a JSON patch must be a list of operations')
                try:
                    new = jsonpatch.apply_patch(old, body, in_place=False)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
                    raise ApiError(422, f'the server rejected our request due to an error in our '
                                        f'request: {e}', reason='Invalid') from None
            else:
                if not isinstance(body, dict):
                    raise ApiError(400, 'a merge patch must be a JSON object')
                if ctype == 'application/strategic-merge-patch+json':
                    body = strip_directives(body)
                self._check_body_type(kind, body, required=False)
                new = merge_patch(copy.deepcopy(old), body)   # never share dicts with `old`
            self._check_rv(kind, old, new, name)
            new = self._sanitize_input(kind, new)
            self._check_target(kind, ns, name, new)
            return await self._write(kind, ns, name, old, new, sub, manager, 'Update', None, dry_run)

    async def _apply(self, kind: Kind, ns: str | None, name: str, sub: str | None, body: Any,
                     params: dict[str, str], dry_run: bool) -> tuple[int, dict[str, Any]]:
        manager = params.get('fieldManager')
        if not manager:
            raise ApiError(422, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                                'is required for apply patch', reason='Invalid',
                           details={'group': 'meta.k8s.io', 'kind': 'PatchOptions', 'causes': [
                               {'reason': 'FieldValueRequired', 'message': 'Required value: is required '
                                'for apply patch', 'field': 'fieldManager'}]})
        force = params.get('force') in ('true', '1')
        config = self._sanitize_input(kind, self._check_body_type(kind, body, required=True))
        self._check_target(kind, ns, name, config)
        config['metadata']['name'] = name
        if sub == 'status':
            config = {'apiVersion': config['apiVersion'], 'kind': config['kind'],
                      'metadata': {'name': name}, 'status': config.get('status')}
        elif kind.status:
            config.pop('status', None)
        applied = {p for p, v in leaves(config).items() if v is not None}
        async with self._lock:
            old = self._live(kind, ns, name)
            if old is None:
                if sub == 'status':
                    raise self._not_found(kind, name)
                for field in SYSTEM_META - {'name', 'namespace'}:
                    config['metadata'].pop(field, None)
                return await self._write(kind, ns, name, None, config, None, manager, 'Apply', applied, dry_run)
            self._check_rv(kind, old, config, name)
            new = merge_patch(copy.deepcopy(old), config)   # never share dicts with `old`
            key = self._key(kind, ns, name)
            owners = self._owners.get(key) or {}
            me: OwnerKey = (manager, 'Apply', sub or '')
            for path in (owners[me].paths if me in owners else set()) - applied:
                if not any(path in owned.paths for k, owned in owners.items() if k != me):
                    remove_path(new, path)
            # Conflicts: fields owned by other managers that this apply would change.
            old_leaves, new_leaves = leaves(old), leaves(new)
            conflicts = sorted({(k[0], p) for k, owned in owners.items() if k[0] != manager
                                for p in owned.paths
                                if any(p[:i] in applied for i in range(1, len(p) + 1))
                                and new_leaves.get(p, MISSING) != old_leaves.get(p, MISSING)})
            if conflicts and not force:
                fields = ['.' + '.'.join(p) for _, p in conflicts]
                lines = '\n'.join(f'- conflict with "{m}": .{".".join(p)}' for m, p in conflicts)
                message = (f'Apply failed with {len(conflicts)} conflict{"s" if len(conflicts) > 1 else ""}:'
                           f' conflict with "{conflicts[0][0]}": {fields[0]}' if len(conflicts) == 1 else
                           f'Apply failed with {len(conflicts)} conflicts: {lines}')
                raise ApiError(409, message, reason='Conflict', details={
                    'name': name, 'group': kind.group, 'kind': kind.plural,
                    'causes': [{'reason': 'FieldManagerConflict', 'message': f'conflict with "{m}"',
                                'field': '.' + '.'.join(p)} for m, p in conflicts]})
            return await self._write(kind, ns, name, old, new, sub, manager, 'Apply', applied, dry_run)

    # --- delete & garbage collection ------------------------------------------------------------

    async def _delete(self, kind: Kind, ns: str | None, name: str, body: Any, params: dict[str, str],
                      dry_run: bool) -> tuple[int, dict[str, Any]]:
        options = body if isinstance(body, dict) else {}
        policy = options.get('propagationPolicy') or params.get('propagationPolicy') or 'Background'
        pre = options.get('preconditions') or {}
        async with self._lock:
            old = self._live(kind, ns, name)
            if old is None:
                raise self._not_found(kind, name)
            meta = old['metadata']
            for field in ('uid', 'resourceVersion'):
                if pre.get(field) and pre[field] != meta.get(field):
                    raise ApiError(409, f'Precondition failed: {field} in precondition: {pre[field]}, '
                                        f'{field} in object meta: {meta.get(field)}', reason='Conflict',
                                   details={'name': name, 'group': kind.group, 'kind': kind.plural})
            details = {'name': name, 'group': kind.group, 'kind': kind.plural, 'uid': meta.get('uid')}
            if dry_run:
                return 200, status_body(200, '', '', details, status='Success')
            if meta.get('finalizers'):
                if not meta.get('deletionTimestamp'):
                    new = copy.deepcopy(old)
                    new['metadata'].update(deletionTimestamp=now_iso(), deletionGracePeriodSeconds=0)
                    if kind.generation:
                        new['metadata']['generation'] = int(meta.get('generation', 1)) + 1
                    old = await self._commit(kind, self._key(kind, ns, name), old, new,
                                             self._owners.get(self._key(kind, ns, name)))
                return 202, old
            await self._commit(kind, self._key(kind, ns, name), old, None)
            if policy != 'Orphan':
                await self._collect_garbage(kind, old)
            return 200, status_body(200, '', '', details, status='Success')

    async def _delete_collection(self, request: kmock.Request, kind: Kind, selector: Selector,
                                 params: dict[str, str], dry_run: bool) -> Any:
        body = self._body(request, 'delete') if request.body else {}
        async with self._lock:
            names = [(obj['metadata'].get('namespace'), obj['metadata']['name'])
                     for k, obj in self._all_live() if k is kind and selector(obj)]
        for ns, name in names:
            with contextlib.suppress(ApiError):
                await self._delete(kind, ns, name, body, params, dry_run)
        return await self._respond(request, 200, status_body(200, '', '', None, status='Success'))

    async def _collect_garbage(self, kind: Kind, deleted: dict[str, Any]) -> None:
        """Immediate, background-style GC of dependents (and of a namespace's contents).
        The caller holds self._lock."""
        queue = [(kind, deleted)]
        while queue:
            gone_kind, gone = queue.pop(0)
            gone_uid = gone['metadata'].get('uid')
            live = self._all_live()
            live_uids = {obj['metadata'].get('uid') for _, obj in live}
            for k, obj in live:
                meta = obj['metadata']
                refs = meta.get('ownerReferences') or []
                in_ns = gone_kind.kind == 'Namespace' and gone_kind.group == '' and k.namespaced \
                    and meta.get('namespace') == gone['metadata']['name']
                owned = any(r.get('uid') == gone_uid for r in refs) and \
                    not any(r.get('uid') in live_uids for r in refs)
                if not (in_ns or owned):
                    continue
                key = self._key(k, meta.get('namespace'), meta['name'])
                current = self._live(k, meta.get('namespace'), meta['name'])
                if current is None:
                    continue
                if current['metadata'].get('finalizers'):
                    if not current['metadata'].get('deletionTimestamp'):
                        new = copy.deepcopy(current)
                        new['metadata'].update(deletionTimestamp=now_iso(), deletionGracePeriodSeconds=0)
                        if k.generation:
                            new['metadata']['generation'] = int(current['metadata'].get('generation', 1)) + 1
                        await self._commit(k, key, current, new, self._owners.get(key))
                    continue
                await self._commit(k, key, current, None)
                queue.append((k, current))

    # --- service account tokens -------------------------------------------------------------------

    async def _token(self, request: kmock.Request, kind: Kind, ns: str | None, name: str, body: Any
                     ) -> Any:
        sa = self._live(kind, ns, name)
        if sa is None:
            raise self._not_found(kind, name)
        spec = (body or {}).get('spec') or {} if isinstance(body, dict) else {}
        seconds = int(spec.get('expirationSeconds') or 3600)
        audiences = spec.get('audiences') or ['https://kubernetes.default.svc.cluster.local']
        issued = int(time.time())
        claims = {'aud': audiences, 'exp': issued + seconds, 'iat': issued, 'nbf': issued,
                  'iss': 'https://kubernetes.default.svc.cluster.local',
                  'sub': f'system:serviceaccount:{ns}:{name}',
                  'kubernetes.io': {'namespace': ns, 'serviceaccount': {'name': name,
                                                                        'uid': sa['metadata']['uid']}}}
        header = {'alg': 'RS256', 'kid': 'kube-standin', 'typ': 'JWT'}
        token = '.'.join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()),
                          b64url(os.urandom(64))])
        expiry = datetime.datetime.fromtimestamp(issued + seconds, datetime.timezone.utc)
        result = {'kind': 'TokenRequest', 'apiVersion': 'authentication.k8s.io/v1',
                  'metadata': {'name': name, 'namespace': ns, 'creationTimestamp': now_iso()},
                  'spec': {'audiences': audiences, 'expirationSeconds': seconds,
                           'boundObjectRef': spec.get('boundObjectRef')},
                  'status': {'token': token, 'expirationTimestamp': expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}}
        return await self._respond(request, 201, result)


# ----------------------------------------------------------------------------- command line

def parse_extra_resource(text: str) -> Kind:
    parts = text.split('/')
    if len(parts) not in (4, 5) or (len(parts) == 5 and parts[4] not in ('cluster', 'namespaced')):
        raise argparse.ArgumentTypeError('expected GROUP/VERSION/PLURAL/Kind[/cluster]')
    return Kind(parts[0], parts[1], parts[2], parts[3], namespaced=len(parts) == 4 or parts[4] != 'cluster')


async def amain(args: argparse.Namespace) -> None:
    handler = KubeStandin(max_watch_seconds=args.max_watch_seconds, bookmark_seconds=args.bookmark_seconds,
                          history_size=args.history, kinds=KINDS + list(args.extra_resource))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with handler:
        server = kmock.Server(handler, host=args.host, port=args.port, user_agent='')
        await server.__aenter__()
        try:
            log.info('listening on http://%s:%s', server.host, server.port)
            if args.port_file:
                tmp = f'{args.port_file}.tmp{os.getpid()}'
                with open(tmp, 'w') as f:
                    f.write(f'{server.port}\n')
                os.replace(tmp, args.port_file)
            await stop.wait()
            log.info('stopping')
        finally:
            await handler.close_watches()
            try:
                await asyncio.wait_for(server.__aexit__(None, None, None), timeout=5)
            except (asyncio.TimeoutError, Exception):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--port-file')
    parser.add_argument('--verbose', action='store_true')
    parser.add_argument('--max-watch-seconds', type=float, default=290.0)
    parser.add_argument('--bookmark-seconds', type=float, default=2.0)
    parser.add_argument('--history', type=int, default=10000, help='watch events kept for resuming')
    parser.add_argument('--extra-resource', type=parse_extra_resource, action='append', default=[])
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                            format='%(asctime)s %(name)s %(levelname)s %(message)s')
        logging.getLogger('aiohttp.access').setLevel(logging.WARNING)   # one line per request is ours
    else:
        logging.disable(logging.CRITICAL)
    asyncio.run(amain(args))


if __name__ == '__main__':
    main()
