"""``kubernetes_sd_configs``: targets from the Kubernetes API by list and watch.

Per role, the objects that make its targets are listed (``GET /api/v1/pods``
etc., once per watched namespace, or cluster-wide when no namespace is given)
and then watched (``?watch=1&resourceVersion=…&allowWatchBookmarks=true``,
newline-delimited ``ADDED``/``MODIFIED``/``DELETED``/``BOOKMARK``/``ERROR``
events). A watch that ends is resumed from the last resource version; an
``ERROR`` with 410 Gone, or any failure, leads to a fresh list (after
``retry`` seconds for failures); every ``resync`` seconds everything is listed
again. The endpoints and endpointslice roles also watch services and pods so
their targets carry service and pod labels, and are rebuilt when those change.

The API server is reached through, in order: ``api_server`` with the job's
HTTP client keys; ``kubeconfig_file`` (current context: server,
certificate-authority(-data), insecure-skip-tls-verify, tls-server-name, and
token/tokenFile, client certificate/key (files or data) or username/password);
or the in-cluster service account (``KUBERNETES_SERVICE_HOST``/``_PORT`` and
the ``token``, ``ca.crt`` and ``namespace`` files). For tests only,
``RWCONSOLE_K8S_SERVICEACCOUNT_DIR`` replaces the service account directory.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from rwconsole.config import schema
from rwconsole.config.discovery import ROLE_KINDS
from rwconsole.config.secrets import Secret
from rwconsole.sources.discovery import kubernetes_roles as roles
from rwconsole.sources.discovery.common import (
    DiscoveryError,
    TargetGroup,
    Updates,
    build_http_client,
    close_http_client,
)

log = logging.getLogger(__name__)

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICEACCOUNT_DIR_ENV = "RWCONSOLE_K8S_SERVICEACCOUNT_DIR"
DEFAULT_RESYNC = 600.0
DEFAULT_WATCH_TIMEOUT = 300.0
DEFAULT_RETRY = 5.0
REQUEST_TIMEOUT = 30.0

# kind -> (API path prefix, resource, namespaced)
_RESOURCES: dict[str, tuple[str, str, bool]] = {
    "node": ("/api/v1", "nodes", False),
    "pod": ("/api/v1", "pods", True),
    "service": ("/api/v1", "services", True),
    "endpoints": ("/api/v1", "endpoints", True),
    "endpointslice": ("/apis/discovery.k8s.io/v1", "endpointslices", True),
    "ingress": ("/apis/networking.k8s.io/v1", "ingresses", True),
}
# role -> kinds watched (the role's own kind first)
_SOURCE_PREFIX = {
    "node": "node",
    "pod": "pod",
    "service": "svc",
    "endpoints": "endpoints",
    "endpointslice": "endpointslice",
    "ingress": "ingress",
}


@dataclass(frozen=True)
class ClusterAccess:
    """Where the API server is and how to talk to it."""

    server: str
    http: Any  # an HTTPClientConfig
    namespace: str  # the namespace rwconsole runs in ("" when unknown)


def cluster_access(config: schema.KubernetesSDConfig) -> ClusterAccess:
    """The API server access for ``config`` (``ValueError`` saying what is missing or wrong)."""
    sa_dir = Path(os.environ.get(SERVICEACCOUNT_DIR_ENV) or SERVICEACCOUNT_DIR)
    own = _read_optional(sa_dir / "namespace")
    if config.api_server:
        return ClusterAccess(config.api_server.rstrip("/"), config, own)
    if config.kubeconfig_file:
        return _from_kubeconfig(Path(config.kubeconfig_file), own)
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ValueError(
            "kubernetes_sd_configs: no api_server or kubeconfig_file, and not in a cluster "
            "(KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set)"
        )
    host = f"[{host}]" if ":" in host else host
    http = schema.HTTPClientConfig(
        bearer_token_file=str(sa_dir / "token"),
        tls_config=schema.TLSConfig(ca_file=str(sa_dir / "ca.crt")),
    )
    return ClusterAccess(f"https://{host}:{port}", http, own)


def _read_optional(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _from_kubeconfig(path: Path, own_namespace: str) -> ClusterAccess:
    where = f"kubeconfig {str(path)!r}"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{where}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: expected a mapping at the top")
    current = doc.get("current-context") or ""
    context = _named(doc, "contexts", "context", current, where)
    cluster = _named(doc, "clusters", "cluster", context.get("cluster", ""), where)
    user = _named(doc, "users", "user", context["user"], where) if context.get("user") else {}
    base = path.parent

    def file(value: str) -> str:
        return str(base / value) if value else ""

    def data(key: str) -> str:
        raw = cluster.get(key) or user.get(key) or ""
        try:
            return base64.b64decode(raw).decode("utf-8") if raw else ""
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"{where}: {key} is not base64-encoded PEM") from None

    key_pem = data("client-key-data")
    tls = schema.TLSConfig(
        ca_pem=data("certificate-authority-data"),
        ca_file=file(cluster.get("certificate-authority", "")),
        cert_pem=data("client-certificate-data"),
        cert_file=file(user.get("client-certificate", "")),
        key_pem=Secret(key_pem, key_path=f"{where} client-key-data") if key_pem else None,
        key_file=file(user.get("client-key", "")),
        insecure_skip_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        server_name=cluster.get("tls-server-name", ""),
    )
    http = schema.HTTPClientConfig(tls_config=tls)
    if user.get("token"):
        http = schema.HTTPClientConfig(tls_config=tls, bearer_token=Secret(user["token"]))
    elif user.get("tokenFile"):
        http = schema.HTTPClientConfig(tls_config=tls, bearer_token_file=file(user["tokenFile"]))
    elif user.get("username"):
        basic = schema.BasicAuthConfig(
            username=user["username"], password=Secret(str(user.get("password", "")))
        )
        http = schema.HTTPClientConfig(tls_config=tls, basic_auth=basic)
    server = str(cluster.get("server") or "")
    if not server:
        raise ValueError(f"{where}: cluster {context.get('cluster')!r} has no server")
    return ClusterAccess(server.rstrip("/"), http, own_namespace or context.get("namespace", ""))


def _named(doc: dict[str, Any], section: str, key: str, name: str, where: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(key) or {}
    raise ValueError(f"{where}: no {key} named {name!r} in {section}")


class _Gone(Exception):
    """The watch's resource version is too old (410): list again."""


class _Informer:
    """Keeps one kind's objects of one namespace (or all) by list and watch."""

    def __init__(
        self,
        owner: KubernetesDiscoverer,
        kind: str,
        namespace: str,
        selector: schema.KubernetesSelectorConfig | None,
    ) -> None:
        prefix, resource, namespaced = _RESOURCES[kind]
        self.kind = kind
        self.path = (
            f"{prefix}/namespaces/{namespace}/{resource}"
            if namespaced and namespace
            else f"{prefix}/{resource}"
        )
        self.params: dict[str, str] = {}
        if selector is not None and selector.label:
            self.params["labelSelector"] = selector.label
        if selector is not None and selector.field:
            self.params["fieldSelector"] = selector.field
        self.synced = False
        self.error = ""
        self._owner = owner
        self._keys: set[str] = set()

    async def run(self) -> None:
        owner = self._owner
        loop = asyncio.get_running_loop()
        while True:
            try:
                version = await self._list()
                self.error = ""
                owner.informer_state_changed()
                resync_at = loop.time() + owner.resync
                while (left := resync_at - loop.time()) > 0:
                    version = await self._watch(version, min(left, owner.watch_timeout))
            except _Gone:
                continue
            except Exception as exc:  # network, API errors, and objects of an unexpected shape
                self.error = f"{self.path}: {exc or type(exc).__name__}"
                log.warning("kubernetes discovery: %s", self.error)
                owner.informer_state_changed()
                await asyncio.sleep(owner.retry)

    async def _list(self) -> str:
        response = await self._owner.request(self.path, self.params)
        body = await _json_body(response)
        items = body.get("items") or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise DiscoveryError("the list's items are not a list of objects")
        store = self._owner.stores[self.kind]
        fresh: set[str] = set()
        for item in items:
            key = roles.object_key(item)
            fresh.add(key)
            self._put(store, key, item)
        for key in self._keys - fresh:
            store.pop(key, None)
            self._owner.changed(self.kind, key)
        self._keys = fresh
        self.synced = True
        return str((body.get("metadata") or {}).get("resourceVersion", ""))

    def _put(self, store: dict[str, roles.Obj], key: str, item: roles.Obj) -> None:
        old = store.get(key)
        if old is not None and _version(old) == _version(item) and _version(item):
            return
        store[key] = item
        self._owner.changed(self.kind, key)

    async def _watch(self, version: str, timeout: float) -> str:
        params = {
            **self.params,
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, int(timeout))),
        }
        response = await self._owner.request(self.path, params, stream=True, read=timeout + 30)
        try:
            if response.status_code == 410:
                raise _Gone
            if response.status_code != 200:
                await _json_body(response)  # raises with the server's message
            async for line in response.aiter_lines():
                if line.strip():
                    version = self._event(json.loads(line), version)
        finally:
            await response.aclose()
        return version

    def _event(self, event: dict[str, Any], version: str) -> str:
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise DiscoveryError(f"watch event is not an object with an object: {event!r:.200}")
        kind = event.get("type")
        obj = event["object"]
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise DiscoveryError(f"watch error {obj.get('code')}: {obj.get('message', '')}")
        store = self._owner.stores[self.kind]
        key = roles.object_key(obj)
        if kind in ("ADDED", "MODIFIED"):
            self._keys.add(key)
            self._put(store, key, obj)
        elif kind == "DELETED":
            self._keys.discard(key)
            if store.pop(key, None) is not None:
                self._owner.changed(self.kind, key)
        return _version(obj) or version


def _version(obj: roles.Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


async def _json_body(response: httpx.Response) -> dict[str, Any]:
    raw = await response.aread()
    try:
        body = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        body = {}
    if response.status_code != 200:
        message = body.get("message", "") if isinstance(body, dict) else ""
        raise DiscoveryError(f"HTTP {response.status_code}" + (f": {message}" if message else ""))
    if not isinstance(body, dict):
        raise DiscoveryError("the API server answered with something that is not a JSON object")
    return body


class KubernetesDiscoverer:
    """One ``kubernetes_sd_configs`` entry."""

    def __init__(
        self,
        config: schema.KubernetesSDConfig,
        *,
        resync: float = DEFAULT_RESYNC,
        watch_timeout: float = DEFAULT_WATCH_TIMEOUT,
        retry: float = DEFAULT_RETRY,
    ) -> None:
        self.error = ""
        self.resync = resync
        self.watch_timeout = watch_timeout
        self.retry = retry
        self._role = config.role
        access = cluster_access(config)
        self._server = access.server
        namespaces = list(config.namespaces.names)
        if config.namespaces.own_namespace:
            if not access.namespace:
                raise ValueError(
                    "kubernetes_sd_configs: own_namespace is set but the namespace is unknown "
                    "(no service account namespace file, no namespace in the kubeconfig context)"
                )
            namespaces.append(access.namespace)
        selectors = {s.role: s for s in config.selectors}
        kinds = ROLE_KINDS[config.role]
        self.stores: dict[str, dict[str, roles.Obj]] = {kind: {} for kind in kinds}
        scopes = sorted(set(namespaces)) or [""]  # "": all namespaces
        self._informers = [
            _Informer(self, kind, namespace, selectors.get(kind))
            for kind in kinds
            for namespace in (scopes if _RESOURCES[kind][2] else [""])
        ]
        self._client, self._auth = build_http_client(access.http, REQUEST_TIMEOUT)
        self._dirty: set[str] = set()
        self._updates: Updates | None = None
        self._stopping = asyncio.Event()

    async def run(self, updates: Updates) -> None:
        self._updates = updates
        tasks = [asyncio.create_task(informer.run()) for informer in self._informers]
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await close_http_client(self._client, self._auth)

    def stop(self) -> None:
        self._stopping.set()

    async def request(
        self,
        path: str,
        params: dict[str, str],
        *,
        stream: bool = False,
        read: float = REQUEST_TIMEOUT,
    ) -> httpx.Response:
        timeout = httpx.Timeout(REQUEST_TIMEOUT, read=read)
        request = self._client.build_request(
            "GET",
            self._server + path,
            params=params,
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
        await self._auth.apply(request)
        return await self._client.send(request, stream=stream)

    def changed(self, kind: str, key: str) -> None:
        """An object was added, changed or removed: rebuild what depends on it."""
        if kind == self._role:
            self._dirty.add(key)
        else:  # a service or pod: rebuild the role's objects of its namespace
            namespace = key.partition("/")[0]
            self._dirty.update(k for k in self.stores[self._role] if k.startswith(namespace + "/"))
        self._flush()

    def informer_state_changed(self) -> None:
        self.error = "; ".join(i.error for i in self._informers if i.error)
        self._flush()

    def _flush(self) -> None:
        if self._updates is None or not all(i.synced for i in self._informers):
            return
        groups = [self._build(key) for key in sorted(self._dirty)]
        self._dirty.clear()
        if groups:
            self._updates(groups)

    def _build(self, key: str) -> TargetGroup:
        obj = self.stores[self._role].get(key)
        if obj is None:
            return TargetGroup(f"{_SOURCE_PREFIX[self._role]}/{key}")
        builders: dict[str, Callable[[roles.Obj], TargetGroup]] = {
            "node": roles.build_node,
            "pod": roles.build_pod,
            "service": roles.build_service,
            "endpoints": lambda o: roles.build_endpoints(o, self._lookup),
            "endpointslice": lambda o: roles.build_endpointslice(o, self._lookup),
            "ingress": roles.build_ingress,
        }
        return builders[self._role](obj)

    def _lookup(self, kind: str, namespace: str, name: str) -> roles.Obj | None:
        return self.stores.get(kind, {}).get(f"{namespace}/{name}")
