#!/usr/bin/env python3
"""A small HTTPS stand-in for Azure Key Vault and the Entra ID token endpoints, for extsecret's tests.

It is test code, not an emulator. It speaks the Key Vault REST dialect exactly as the official Rust
SDK (azure_security_keyvault_{secrets,certificates,keys} 1.0, azure_identity 1.0, azure_core 1.1)
sends and parses it, for the read operations extsecret uses, and nothing more. Python 3.11 stdlib
only (plus the `openssl` command line for client-certificate assertions).

Usage:
    python3 keyvault_standin.py --config CONFIG.json --port-file PORT_FILE --cert SERVER.pem --key SERVER.key
        [--port N] [--watch-stdin]

It listens on https://127.0.0.1:PORT (PORT 0 = any free port), writes PORT to --port-file once it
accepts connections, and with --watch-stdin exits when its stdin reaches end of file (so it dies
with the test process that started it). The vault, the Entra token endpoint (the authority host
for AZURE_AUTHORITY_HOST) and the App Service managed-identity endpoint are all this one origin.

What it implements
------------------
Vault (every request needs `Authorization: Bearer <a token this process issued for resource
api://0.0.1>`; otherwise 401 with
`WWW-Authenticate: Bearer authorization="https://127.0.0.1:PORT/TENANT", resource="api://0.0.1"`.
The SDK's challenge-resource check accepts this resource because the vault host 127.0.0.1 ends
with ".0.0.1"). Every vault request needs an `api-version` query parameter (400 BadParameter
otherwise); any of Key Vault's published versions is accepted and the answer does not depend on it.
  GET /secrets/{name}[/{version}]     the secret bundle: value, id, contentType, attributes
                                      (enabled, nbf, exp, created, updated, recoveryLevel,
                                      recoverableDays), tags, kid and managed for
                                      certificate-backed secrets. Empty version = latest.
                                      Disabled: 403 Forbidden "Operation get is not allowed on a
                                      disabled secret." (innererror SecretDisabled). Expired or
                                      not-yet-valid secrets are served, as Key Vault serves them.
  GET /secrets                        secret properties (no values), disabled ones included, in
                                      configuration order; pages of min(page_size, maxresults)
                                      items (page_size defaults to 2; maxresults must be 1..25)
                                      linked by an absolute `nextLink` with an opaque $skiptoken;
                                      the last page has "nextLink": null.
  GET /secrets/{name}/versions        the versions' properties (oldest first), paged the same way;
                                      an unknown name gives an empty list.
  GET /certificates/{name}[/{version}] the certificate bundle: id, kid, sid, x5t, cer (standard
                                      base64 of the DER certificate), attributes, a minimal policy
                                      (id, secret_props.contentType, issuer, attributes), tags.
                                      Served when disabled (the certificate is public metadata).
  GET /keys/{name}[/{version}]        the key bundle: `key` is the public JWK exactly as configured,
                                      with "kid" first (Key Vault's own field order is kid, kty,
                                      key_ops, then n, e or crv, x, y: write the configuration in
                                      that order), compact JSON; attributes; tags. Disabled: 403
                                      Forbidden "Operation get is not allowed on a disabled key."
  Errors use Key Vault's body {"error": {"code", "message"[, "innererror": {"code"}]}}: 404
  SecretNotFound / CertificateNotFound / KeyNotFound with Key Vault's wording, 403 Forbidden
  (AccessDenied) for objects configured `"forbidden": true` and for the listing when
  `"deny_list": true`, 400 BadParameter for a bad api-version or maxresults, 501 NotImplemented
  for any other operation (writes, deleted objects, certificate/key listings, ...).
  Fault injection: an object's `"faults": [429, 503, ...]` answers its first N *authorized* GETs
  (any version) with those statuses: 429 Throttled with `Retry-After: 0`, 503 ServiceUnavailable,
  others with a generic code. `"list_faults"` does the same for the first N GET /secrets (any page).

Entra ID token endpoint: POST /{tenant}/oauth2/v2.0/token, form body, grant_type
client_credentials, scope "<resource>/.default" (the token is valid for that resource only).
  - client_id + client_secret, checked against the configured secret (401 invalid_client
    AADSTS7000215 otherwise);
  - client_id + client_assertion + client_assertion_type
    (urn:ietf:params:oauth:client-assertion-type:jwt-bearer), checked against either a configured
    literal `assertion` (a federated token, as workload identity presents it; 401 AADSTS700213
    otherwise) or a configured `certificate` (PEM): the assertion must then be a JWT with alg
    RS256, PS256 or ES256, an x5t or x5t#S256 header matching the certificate, a signature that
    the certificate's public key verifies (with `openssl dgst`), iss = sub = client_id, aud = this
    token endpoint's URL (https://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token, or .../oauth2/token),
    exp in the future and nbf (when present) not in the future (2 minutes of skew).
  A client with `federated_subject` (and optionally `federated_audience`, default
  api://AzureADTokenExchange) accepts any JWT whose `sub` and `aud` match, as a federated
  identity credential does (the issuer's signature is not checked here).
  Unknown tenant: 400 AADSTS90002; unknown client: 400 AADSTS700016. Answers and errors are
  Entra's JSON ({"token_type", "expires_in", "ext_expires_in", "access_token"} /
  {"error", "error_description", "error_codes"}). Tokens last 3599 s (the SDK caches them).

App Service managed identity (the SDK's source when IDENTITY_ENDPOINT and IDENTITY_HEADER are set;
point IDENTITY_ENDPOINT at https://127.0.0.1:PORT/msi/token): GET /msi/token with header
X-IDENTITY-HEADER = the configured header, api-version=2019-08-01, resource, and optionally
client_id, object_id or mi_res_id/msi_res_id choosing a user-assigned identity (else the
system-assigned one, when configured). Answer: {"access_token", "expires_on" (epoch seconds as a
string), "resource", "token_type", "client_id"}; a wrong header gives 401, an identity that is not
configured 400 (as App Service).

Request log: GET /_admin/requests (no authentication) returns one JSON object per line per request
received so far (admin requests excluded), in arrival order:
  {"method", "path", "query": {name: value}, "authorized": bool, "token_kind", "status",
   "client_id", "tenant", "resource"}
`authorized` is whether the request carried a valid token this process issued; `token_kind` is that
token's kind ("client_secret", "client_assertion" for a literal/federated assertion,
"client_certificate" for a certificate-signed assertion, "managed_identity") and, on a token
request, the kind of grant presented. Values and credentials are never logged.

Configuration (JSON):
  {
    "tenant": "TENANT",
    "clients": {"CLIENT_ID": {"secret": "..."} | {"assertion": "..."} | {"certificate": "PEM"}},
    "managed_identity": {"header": "...", "system_assigned": true, "client_ids": [...],
                         "object_ids": [...], "resource_ids": [...]},
    "page_size": 2, "deny_list": false, "list_faults": [],
    "secrets":      {"NAME": OBJECT},
    "certificates": {"NAME": OBJECT},
    "keys":         {"NAME": OBJECT}
  }
  OBJECT = "value" (secrets only: one enabled version)
         | {VERSION fields..., "faults": [...], "forbidden": bool}
         | {"versions": [VERSION, ... (oldest first, the last is the latest)], "faults", "forbidden"}
  VERSION = {"version": "32 hex" (default: derived from name and index), "enabled": true,
             "exp"/"nbf"/"created"/"updated": epoch seconds, "tags": {...}, "contentType": "...",
             "managed": bool,
             "value": "..." (secrets), "cer_pem": "PEM" or "cer": "base64 DER" (certificates),
             "key": {public JWK fields, in Key Vault's order, without kid} (keys)}
"""

import argparse
import base64
import hashlib
import json
import os
import secrets as pysecrets
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESOURCE = "api://0.0.1"
API_VERSIONS = {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MSI_API_VERSION = "2019-08-01"
RECOVERY = {"recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}
NOT_FOUND = {
    "secrets": ("SecretNotFound", "secret"),
    "certificates": ("CertificateNotFound", "certificate"),
    "keys": ("KeyNotFound", "key"),
}
DELETED_HINT = (
    " was not found in this key vault. If you recently deleted this {kind} you may be able to recover it"
    " using the correct recovery command. For help resolving this issue, please see"
    " https://go.microsoft.com/fwlink/?linkid=2125182"
)



def jwt_claims(token):
    """The payload of a JWT (no signature check), or None."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload))
    except Exception:
        return None

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Store:
    """Configuration, issued tokens, counters and the request log, shared by all handler threads."""

    def __init__(self, config):
        self.config = config
        self.tenant = config.get("tenant", "")
        self.page_size = int(config.get("page_size", 2))
        self.lock = threading.Lock()
        self.tokens = {}  # token -> {"kind", "client_id", "resource"}
        self.log = []
        self.hits = {}  # "secrets/NAME" or "list/secrets" -> authorized GETs so far
        self.port = 0
        self.objects = {kind: self._normalise(kind, config.get(kind, {})) for kind in NOT_FOUND}

    @staticmethod
    def _normalise(kind, objects):
        out = {}
        for name, obj in objects.items():
            if isinstance(obj, str):
                obj = {"value": obj}
            versions = obj.get("versions")
            if versions is None:
                versions = [{k: v for k, v in obj.items() if k not in ("faults", "forbidden")}]
            norm = []
            for i, v in enumerate(versions):
                v = dict(v)
                v.setdefault("version", hashlib.md5(f"{kind}/{name}/{i}".encode()).hexdigest())
                v.setdefault("enabled", True)
                v.setdefault("created", 1700000000 + i)
                v.setdefault("updated", v["created"])
                norm.append(v)
            out[name] = {
                "versions": norm,
                "faults": list(obj.get("faults", [])),
                "forbidden": bool(obj.get("forbidden", False)),
            }
        return out

    @property
    def base(self):
        return f"https://127.0.0.1:{self.port}"

    def issue(self, kind, client_id, resource):
        token = "kvs-" + pysecrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = {"kind": kind, "client_id": client_id, "resource": resource}
        return token

    def token_info(self, header):
        if not header or not header.startswith("Bearer "):
            return None
        with self.lock:
            return self.tokens.get(header[len("Bearer "):].strip())

    def next_fault(self, key, faults):
        with self.lock:
            n = self.hits.get(key, 0)
            self.hits[key] = n + 1
        return faults[n] if n < len(faults) else None

    def record(self, entry):
        with self.lock:
            self.log.append(entry)

    def log_lines(self):
        with self.lock:
            return "".join(json.dumps(e) + "\n" for e in self.log)


def attributes(v, extra=None):
    a = {"enabled": bool(v["enabled"])}
    for k in ("nbf", "exp"):
        if v.get(k) is not None:
            a[k] = int(v[k])
    a["created"] = int(v["created"])
    a["updated"] = int(v["updated"])
    a.update(RECOVERY)
    if extra:
        a.update(extra)
    return a


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keyvault-standin/1"
    sys_version = ""
    store: Store = None  # set by main()

    # --- plumbing --------------------------------------------------------------------------------

    def setup(self):
        self.request.settimeout(30)
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK add about 40 ms to every answer.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.request.close()
            raise
        super().setup()

    def log_message(self, fmt, *args):  # quiet: the request log is the record
        pass

    def handle(self):
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, TimeoutError):
            pass

    def send(self, status, body=None, headers=None, content_type="application/json; charset=utf-8"):
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self._entry["status"] = status

    def kv_error(self, status, code, message, inner=None, headers=None):
        err = {"code": code, "message": message}
        if inner:
            err["innererror"] = {"code": inner}
        self.send(status, {"error": err}, headers)

    def _begin(self):
        url = urllib.parse.urlsplit(self.path)
        self._path = url.path
        self._query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        self._entry = {
            "method": self.command,
            "path": self._path,
            "query": self._query,
            "authorized": False,
            "token_kind": None,
            "status": None,
            "client_id": None,
            "tenant": None,
            "resource": None,
        }

    def _finish(self):
        if not self._path.startswith("/_admin/"):
            self.store.record(self._entry)

    def do_GET(self):
        self._begin()
        try:
            self.route()
        finally:
            self._finish()

    def do_POST(self):
        self._begin()
        try:
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else b""
            self.route()
        finally:
            self._finish()

    def do_PUT(self):
        self.do_POST()

    def do_PATCH(self):
        self.do_POST()

    def do_DELETE(self):
        self.do_POST()

    # --- routing ---------------------------------------------------------------------------------

    def route(self):
        parts = [p for p in self._path.split("/") if p != ""]
        if self._path == "/_admin/requests" and self.command == "GET":
            return self.send(200, self.store.log_lines().encode(), content_type="application/x-ndjson")
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and self.command == "POST":
            return self.entra_token(parts[0])
        if parts == ["msi", "token"] and self.command == "GET":
            return self.msi_token()
        return self.vault(parts)

    # --- Entra ID --------------------------------------------------------------------------------

    def entra_error(self, status, error, code, description):
        self.send(status, {
            "error": error,
            "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
        })

    def entra_token(self, tenant):
        form = dict(urllib.parse.parse_qsl(self._body.decode("utf-8", "replace"), keep_blank_values=True))
        client_id = form.get("client_id", "")
        e = self._entry
        e["tenant"], e["client_id"] = tenant, client_id
        if "client_secret" in form:
            e["token_kind"] = "client_secret"
        elif "client_assertion" in form:
            e["token_kind"] = "client_assertion"
        if tenant != self.store.tenant:
            return self.entra_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            return self.entra_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        client = self.store.config.get("clients", {}).get(client_id)
        if client is None:
            return self.entra_error(400, "unauthorized_client", 700016, f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.")
        scope = form.get("scope", "")
        if not scope.endswith("/.default") or " " in scope:
            return self.entra_error(400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
        resource = scope[: -len("/.default")]
        e["resource"] = resource
        if "client_secret" in form:
            if client.get("secret") is None or form["client_secret"] != client["secret"]:
                return self.entra_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + client_id + "'.")
            kind = "client_secret"
        elif "client_assertion" in form:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                return self.entra_error(400, "invalid_request", 50027, "client_assertion_type is missing or not urn:ietf:params:oauth:client-assertion-type:jwt-bearer.")
            assertion = form["client_assertion"]
            if client.get("federated_subject") is not None:
                # A federated credential: Entra checks the token's issuer, subject and audience
                # (and its signature through the issuer's OIDC keys, which this stand-in skips).
                claims = jwt_claims(assertion)
                aud = claims.get("aud") if isinstance(claims, dict) else None
                auds = aud if isinstance(aud, list) else [aud]
                if not isinstance(claims, dict) or claims.get("sub") != client["federated_subject"] \
                        or client.get("federated_audience", "api://AzureADTokenExchange") not in auds:
                    return self.entra_error(401, "invalid_client", 700213, "No matching federated identity record found for presented assertion.")
                kind = "client_assertion"
            elif client.get("assertion") is not None:
                if assertion != client["assertion"]:
                    return self.entra_error(401, "invalid_client", 700213, "No matching federated identity record found for presented assertion.")
                kind = "client_assertion"
            elif client.get("certificate") is not None:
                problem = self.check_certificate_assertion(assertion, client_id, tenant, client["certificate"])
                if problem:
                    return self.entra_error(401, "invalid_client", problem[0], problem[1])
                kind = "client_certificate"
            else:
                return self.entra_error(401, "invalid_client", 700027, "Client assertion failed signature validation: no certificate or federated credential is registered for the application.")
        else:
            return self.entra_error(401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
        e["token_kind"] = kind
        token = self.store.issue(kind, client_id, resource)
        self.send(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})

    def check_certificate_assertion(self, assertion, client_id, tenant, cert_pem):
        """Returns None when the JWT is valid, else (AADSTS code, description)."""
        try:
            h64, p64, s64 = assertion.split(".")
            header = json.loads(b64url_decode(h64))
            payload = json.loads(b64url_decode(p64))
            sig = b64url_decode(s64)
        except Exception:
            return (50027, "JWT token is invalid or malformed.")
        try:
            der = ssl.PEM_cert_to_DER_cert(cert_pem[cert_pem.index("-----BEGIN CERTIFICATE-----"):])
        except Exception:
            return (700027, "The configured client certificate is not a PEM certificate.")
        if header.get("x5t") not in (None, b64url(hashlib.sha1(der).digest())) or header.get("x5t#S256") not in (None, b64url(hashlib.sha256(der).digest())):
            return (700027, "Client assertion contains an invalid signature. [Reason - The key was not found.]")
        if header.get("x5t") is None and header.get("x5t#S256") is None:
            return (700027, "Client assertion contains no x5t or x5t#S256 header.")
        alg = header.get("alg")
        if alg not in ("RS256", "PS256", "ES256"):
            return (700027, f"Client assertion uses an unsupported algorithm {alg}.")
        now = time.time()
        token_url = f"{self.store.base}/{tenant}/oauth2/v2.0/token"
        if payload.get("aud") not in (token_url, f"{self.store.base}/{tenant}/oauth2/token"):
            return (50013, f"Assertion audience claim '{payload.get('aud')}' does not match the token endpoint.")
        if payload.get("iss") != client_id or payload.get("sub") != client_id:
            return (700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
        if not isinstance(payload.get("exp"), (int, float)) or payload["exp"] < now - 120:
            return (700024, "Client assertion is not within its valid time range.")
        if isinstance(payload.get("nbf"), (int, float)) and payload["nbf"] > now + 120:
            return (700024, "Client assertion is not within its valid time range.")
        if alg == "ES256":
            if len(sig) != 64:
                return (700027, "Client assertion contains an invalid signature.")
            sig = der_ecdsa(sig[:32], sig[32:])
        with tempfile.TemporaryDirectory() as d:
            cert_file, pub_file, sig_file = (os.path.join(d, n) for n in ("c.pem", "p.pem", "s.bin"))
            with open(cert_file, "w") as f:
                f.write(ssl.DER_cert_to_PEM_cert(der))
            with open(sig_file, "wb") as f:
                f.write(sig)
            pub = subprocess.run(["openssl", "x509", "-in", cert_file, "-pubkey", "-noout"], capture_output=True)
            if pub.returncode != 0:
                return (700027, "The configured client certificate could not be read.")
            with open(pub_file, "wb") as f:
                f.write(pub.stdout)
            cmd = ["openssl", "dgst", "-sha256", "-verify", pub_file, "-signature", sig_file]
            if alg == "PS256":
                cmd += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
            ok = subprocess.run(cmd, input=f"{h64}.{p64}".encode(), capture_output=True)
            if ok.returncode != 0:
                return (700027, "Client assertion contains an invalid signature.")
        return None

    def msi_token(self):
        mi = self.store.config.get("managed_identity")
        q = self._query
        e = self._entry
        e["token_kind"] = "managed_identity"
        e["resource"] = q.get("resource")
        if mi is None or self.headers.get("X-IDENTITY-HEADER") != mi.get("header"):
            return self.send(401, {"statusCode": 401, "message": "Unauthorized: the X-IDENTITY-HEADER header is missing or wrong."})
        if q.get("api-version") != MSI_API_VERSION:
            return self.send(400, {"statusCode": 400, "message": f"api-version {q.get('api-version')} is not supported; use {MSI_API_VERSION}."})
        if not q.get("resource"):
            return self.send(400, {"statusCode": 400, "message": "The resource parameter is required."})
        if "client_id" in q:
            ok, who = q["client_id"] in mi.get("client_ids", []), q["client_id"]
        elif "object_id" in q:
            ok, who = q["object_id"] in mi.get("object_ids", []), q["object_id"]
        elif "mi_res_id" in q or "msi_res_id" in q:
            rid = q.get("mi_res_id", q.get("msi_res_id"))
            ok, who = rid in mi.get("resource_ids", []), rid
        else:
            ok, who = bool(mi.get("system_assigned", False)), "system-assigned"
        e["client_id"] = who
        if not ok:
            return self.send(400, {"statusCode": 400, "message": "No Managed Identity found for specified ClientId/ResourceId/PrincipalId."})
        token = self.store.issue("managed_identity", who, q["resource"])
        self.send(200, {
            "access_token": token,
            "expires_on": str(int(time.time()) + 3600),
            "resource": q["resource"],
            "token_type": "Bearer",
            "client_id": who,
        })

    # --- the vault -------------------------------------------------------------------------------

    def vault(self, parts):
        store = self.store
        info = store.token_info(self.headers.get("Authorization"))
        challenge = {"WWW-Authenticate": f'Bearer authorization="{store.base}/{store.tenant}", resource="{RESOURCE}"'}
        if info is None:
            msg = "AKV10000: Request is missing a Bearer or PoP token." if not self.headers.get("Authorization") else "AKV10032: Invalid issuer."
            return self.kv_error(401, "Unauthorized", msg, headers=challenge)
        if info["resource"] != RESOURCE:
            return self.kv_error(401, "Unauthorized", f"AKV10022: Invalid audience. Expected {RESOURCE}, found: {info['resource']}.", headers=challenge)
        e = self._entry
        e["authorized"], e["token_kind"], e["client_id"] = True, info["kind"], info["client_id"]
        version = self._query.get("api-version")
        if version is None:
            return self.kv_error(400, "BadParameter", "The request URI contains no api-version parameter.")
        if version not in API_VERSIONS:
            return self.kv_error(400, "BadParameter", f"The specified version ({version}) is not recognized. Consider using the latest supported version (2025-07-01).")
        if self.command != "GET" or not parts or parts[0] not in NOT_FOUND:
            return self.kv_error(501, "NotImplemented", f"keyvault_standin does not implement {self.command} {self._path}")
        kind = parts[0]
        if kind == "secrets" and len(parts) == 1:
            return self.list_secrets()
        if kind == "secrets" and len(parts) == 3 and parts[2] == "versions":
            return self.list_versions(parts[1])
        if len(parts) in (2, 3):
            return self.get_object(kind, parts[1], parts[2] if len(parts) == 3 else "")
        return self.kv_error(501, "NotImplemented", f"keyvault_standin does not implement {self.command} {self._path}")

    def fault(self, key, faults):
        status = self.store.next_fault(key, faults) if faults else None
        if status is None:
            return False
        if status == 429:
            self.kv_error(429, "Throttled", "Request was not processed because too many requests were received. Reason: injected by keyvault_standin", headers={"Retry-After": "0"})
        elif status == 503:
            self.kv_error(503, "ServiceUnavailable", "The service is temporarily unavailable (injected by keyvault_standin).")
        else:
            self.kv_error(status, "InternalServerError" if status >= 500 else "BadRequest", f"Injected failure {status}.")
        return True

    def forbidden(self, permission):
        client = self._entry["client_id"]
        self.kv_error(403, "Forbidden", f"The user, group or application 'appid={client};iss=https://sts.windows.net/{self.store.tenant}/' does not have {permission} permission on key vault 'standin;location=local'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287", inner="AccessDenied")

    def get_object(self, kind, name, version):
        store = self.store
        obj = store.objects[kind].get(name)
        code, word = NOT_FOUND[kind]
        if obj is not None and self.fault(f"{kind}/{name}", obj["faults"]):
            return
        if obj is not None and obj["forbidden"]:
            return self.forbidden(f"{word}s get")
        v = None
        if obj is not None:
            if version == "":
                v = obj["versions"][-1]
            else:
                v = next((x for x in obj["versions"] if x["version"] == version), None)
        if v is None:
            ident = f"{name}/{version}" if version else name
            return self.kv_error(404, code, f"A {word} with (name/id) {ident}" + DELETED_HINT.format(kind=word))
        if not v["enabled"] and kind in ("secrets", "keys"):
            inner = "SecretDisabled" if kind == "secrets" else "KeyDisabled"
            return self.kv_error(403, "Forbidden", f"Operation get is not allowed on a disabled {word}.", inner=inner)
        ident = f"{store.base}/{kind}/{name}/{v['version']}"
        if kind == "secrets":
            body = {"value": v.get("value", "")}
            if v.get("contentType") is not None:
                body["contentType"] = v["contentType"]
            body["id"] = ident
            if v.get("managed"):
                body["managed"] = True
                body["kid"] = f"{store.base}/keys/{name}/{v['version']}"
            body["attributes"] = attributes(v)
            if v.get("tags") is not None:
                body["tags"] = v["tags"]
        elif kind == "certificates":
            if v.get("cer_pem") is not None:
                der = ssl.PEM_cert_to_DER_cert(v["cer_pem"])
            else:
                der = base64.b64decode(v.get("cer", ""))
            ct = v.get("contentType", "application/x-pkcs12")
            body = {
                "id": ident,
                "kid": f"{store.base}/keys/{name}/{v['version']}",
                "sid": f"{store.base}/secrets/{name}/{v['version']}",
                "x5t": b64url(hashlib.sha1(der).digest()),
                "cer": base64.b64encode(der).decode(),
                "attributes": attributes(v),
                "policy": {
                    "id": f"{store.base}/certificates/{name}/policy",
                    "secret_props": {"contentType": ct},
                    "issuer": {"name": "Self"},
                    "attributes": {"enabled": True, "created": int(v["created"]), "updated": int(v["updated"])},
                },
            }
            if v.get("tags") is not None:
                body["tags"] = v["tags"]
        else:
            jwk = {"kid": ident}
            jwk.update({k: x for k, x in v.get("key", {}).items() if k != "kid"})
            body = {"key": jwk, "attributes": attributes(v, {"exportable": False})}
            if v.get("tags") is not None:
                body["tags"] = v["tags"]
            if v.get("managed"):
                body["managed"] = True
        self.send(200, body)

    def page(self, items):
        """Answers one page of `items` (a list of JSON objects) for the listing at self._path."""
        q = self._query
        size = self.store.page_size
        if "maxresults" in q:
            try:
                m = int(q["maxresults"])
            except ValueError:
                m = 0
            if not 1 <= m <= 25:
                return self.kv_error(400, "BadParameter", "Invalid value for maxresults: it must be an integer between 1 and 25.")
            size = min(size, m)
        start = 0
        if "$skiptoken" in q:
            try:
                start = int(json.loads(b64url_decode(q["$skiptoken"]))["offset"])
            except Exception:
                return self.kv_error(400, "BadParameter", "The $skiptoken is not valid.")
        chunk = items[start:start + size]
        body = {"value": chunk, "nextLink": None}
        if start + size < len(items):
            params = {"api-version": q["api-version"], "$skiptoken": b64url(json.dumps({"offset": start + size}).encode())}
            if "maxresults" in q:
                params["maxresults"] = q["maxresults"]
            body["nextLink"] = f"{self.store.base}{self._path}?{urllib.parse.urlencode(params)}"
        self.send(200, body)

    @staticmethod
    def properties(base, name, v, with_version):
        ident = f"{base}/secrets/{name}/{v['version']}" if with_version else f"{base}/secrets/{name}"
        p = {"id": ident, "attributes": attributes(v)}
        if v.get("tags") is not None:
            p["tags"] = v["tags"]
        if v.get("contentType") is not None:
            p["contentType"] = v["contentType"]
        if v.get("managed"):
            p["managed"] = True
        return p

    def list_secrets(self):
        store = self.store
        if self.fault("list/secrets", store.config.get("list_faults", [])):
            return
        if store.config.get("deny_list"):
            return self.forbidden("secrets list")
        items = [self.properties(store.base, n, o["versions"][-1], False) for n, o in store.objects["secrets"].items()]
        self.page(items)

    def list_versions(self, name):
        store = self.store
        if store.config.get("deny_list"):
            return self.forbidden("secrets list")
        obj = store.objects["secrets"].get(name)
        items = [self.properties(store.base, name, v, True) for v in (obj["versions"] if obj else [])]
        self.page(items)


def der_ecdsa(r, s):
    """DER SEQUENCE { INTEGER r, INTEGER s } from the raw JWS halves."""
    def integer(b):
        b = b.lstrip(b"\0") or b"\0"
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b
    body = integer(r) + integer(s)
    return b"\x30" + bytes([len(body)]) + body


def main():
    ap = argparse.ArgumentParser(description="Azure Key Vault stand-in for tests (see the module docstring).")
    ap.add_argument("--config", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--cert", required=True, help="server certificate (PEM) for 127.0.0.1")
    ap.add_argument("--key", required=True, help="its private key (PEM)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches end of file")
    args = ap.parse_args()

    with open(args.config) as f:
        store = Store(json.load(f))
    Handler.store = store

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    store.port = server.server_address[1]

    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(store.port))
    os.replace(tmp, args.port_file)

    if args.watch_stdin:
        def watch():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                os._exit(0)
        threading.Thread(target=watch, daemon=True).start()

    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
