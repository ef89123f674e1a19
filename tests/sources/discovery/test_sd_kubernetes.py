"""kubernetes_sd against a loopback server replaying recorded list/watch responses.

No Kubernetes API server runs here: ``k8s_replay.ReplayAPIServer`` answers
with fixtures written from the Kubernetes API reference in the shape a real
API server returns, and streams the watch events each test pushes.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import http_helpers
import pytest
from k8s_replay import ReplayAPIServer, fixture

from rwconsole.config.schema import (
    KubernetesNamespacesConfig,
    KubernetesSDConfig,
    KubernetesSelectorConfig,
)
from rwconsole.config.secrets import Secret
from rwconsole.sources.discovery.common import TargetGroup
from rwconsole.sources.discovery.kubernetes import (
    SERVICEACCOUNT_DIR_ENV,
    KubernetesDiscoverer,
    cluster_access,
)

pytestmark = pytest.mark.anyio
# The test PKI of the remote-write client tests (a CA, a server certificate for 127.0.0.1).
M = "__meta_kubernetes_"
PODS = "/api/v1/pods"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def api() -> AsyncIterator[ReplayAPIServer]:
    server = ReplayAPIServer()
    server.lists = {
        PODS: fixture("pods-list.json"),
        "/api/v1/nodes": fixture("nodes-list.json"),
        "/api/v1/services": fixture("services-list.json"),
        "/api/v1/endpoints": fixture("endpoints-list.json"),
        "/apis/discovery.k8s.io/v1/endpointslices": fixture("endpointslices-list.json"),
        "/apis/networking.k8s.io/v1/ingresses": fixture("ingresses-list.json"),
    }
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Running:
    """A discoverer running in the background; ``groups`` holds the latest group per source."""

    def __init__(self, discoverer: KubernetesDiscoverer) -> None:
        self.discoverer = discoverer
        self.groups: dict[str, TargetGroup] = {}
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(discoverer.run(self._update))

    def _update(self, groups: list[TargetGroup]) -> None:
        for group in groups:
            self.groups[group.source] = group
        self.changed.set()

    async def next_change(self) -> None:
        await asyncio.wait_for(self.changed.wait(), 10)
        self.changed.clear()

    async def error(self) -> str:
        """The discoverer's error once it has one (bounded wait)."""
        for _ in range(500):
            if self.discoverer.error:
                break
            await asyncio.sleep(0.01)
        return self.discoverer.error

    async def stop(self) -> None:
        self.discoverer.stop()
        await asyncio.wait_for(self.task, 10)


def config(api: ReplayAPIServer, role: str, **kw: Any) -> KubernetesSDConfig:
    return KubernetesSDConfig(role=role, api_server=api.url, **kw)


async def discover(api: ReplayAPIServer, role: str, **kw: Any) -> dict[str, TargetGroup]:
    running = Running(KubernetesDiscoverer(config(api, role, **kw), retry=0.05))
    try:
        await running.next_change()
        return running.groups
    finally:
        await running.stop()


async def test_pod_role_list_then_watch(api: ReplayAPIServer) -> None:
    running = Running(
        KubernetesDiscoverer(config(api, "pod", bearer_token=Secret("t0ken")), retry=0.05)
    )
    try:
        await running.next_change()
        web = running.groups["pod/default/web-0"]
        assert running.groups["pod/default/pending-1"].targets == []  # no pod IP yet
        assert web.labels == {
            M + "namespace": "default",
            M + "pod_name": "web-0",
            M + "pod_ip": "10.1.0.5",
            M + "pod_ready": "true",
            M + "pod_phase": "Running",
            M + "pod_node_name": "node-1",
            M + "pod_host_ip": "192.168.1.10",
            M + "pod_uid": "web-0-uid-0001",
            M + "pod_controller_kind": "StatefulSet",
            M + "pod_controller_name": "web",
            M + "pod_label_app": "web",
            M + "pod_labelpresent_app": "true",
            M + "pod_label_app_kubernetes_io_name": "web",
            M + "pod_labelpresent_app_kubernetes_io_name": "true",
            M + "pod_annotation_prometheus_io_scrape": "true",
            M + "pod_annotationpresent_prometheus_io_scrape": "true",
        }
        assert [t["__address__"] for t in web.targets] == [
            "10.1.0.5:8080",
            "10.1.0.5:9090",
            "10.1.0.5",
            "10.1.0.5",
        ]
        assert web.targets[1] == {
            "__address__": "10.1.0.5:9090",
            M + "pod_container_name": "app",
            M + "pod_container_id": "containerd://abcd",
            M + "pod_container_image": "nginx:1.25",
            M + "pod_container_init": "false",
            M + "pod_container_port_name": "metrics",
            M + "pod_container_port_number": "9090",
            M + "pod_container_port_protocol": "TCP",
        }
        assert web.targets[3][M + "pod_container_init"] == "true"
        assert web.targets[3][M + "pod_container_id"] == "containerd://0a1b"
        listed = api.requests[0]
        assert listed.headers["authorization"] == "Bearer t0ken"

        await api.wait_watch(PODS)
        watch = next(r for r in api.requests if r.query.get("watch") == "1")
        assert watch.query["resourceVersion"] == "1010"
        assert watch.query["allowWatchBookmarks"] == "true"

        started = copy.deepcopy(fixture("pods-list.json")["items"][1])
        started["metadata"]["resourceVersion"] = "1011"
        started["status"].update(phase="Running", podIP="10.1.0.7")
        api.push(PODS, "MODIFIED", started)
        await running.next_change()
        assert running.groups["pod/default/pending-1"].targets[0]["__address__"] == "10.1.0.7"

        api.push(PODS, "BOOKMARK", {"kind": "Pod", "metadata": {"resourceVersion": "1500"}})
        gone = fixture("pods-list.json")["items"][0]
        gone["metadata"]["resourceVersion"] = "1501"
        api.push(PODS, "DELETED", gone)
        await running.next_change()
        assert running.groups["pod/default/web-0"].targets == []

        # The watch ends: it resumes from the last resource version seen.
        api.end_watch(PODS)
        await api.wait_watch(PODS, 2)
        watches = [r for r in api.requests if r.query.get("watch") == "1"]
        assert watches[-1].query["resourceVersion"] == "1501"
        assert api.lists_of(PODS) == 1

        # 410 Gone in the stream: list again, then watch from the new list's version.
        api.push(PODS, "ERROR", {"kind": "Status", "code": 410, "message": "too old"})
        await api.wait_watch(PODS, 3)
        assert api.lists_of(PODS) == 2
        # The relist still has web-0 (the fixture): it is reported back.
        await running.next_change()
        assert running.groups["pod/default/web-0"].targets
    finally:
        await running.stop()


async def test_watch_answered_410_relists(api: ReplayAPIServer) -> None:
    api.watch_status[PODS] = 410
    running = Running(KubernetesDiscoverer(config(api, "pod"), retry=0.05))
    try:
        await running.next_change()
        await api.wait_watch(PODS)
        assert api.lists_of(PODS) == 2
    finally:
        await running.stop()


async def test_failures_are_retried_and_reported(api: ReplayAPIServer) -> None:
    pods = api.lists.pop(PODS)
    running = Running(KubernetesDiscoverer(config(api, "pod"), retry=0.05))
    try:
        assert await running.error() == f"{PODS}: HTTP 404: not found"
        api.lists[PODS] = pods
        await running.next_change()
        assert running.discoverer.error == ""
        assert running.groups["pod/default/web-0"].targets
    finally:
        await running.stop()


async def test_namespaces_and_selectors_shape_the_requests(api: ReplayAPIServer) -> None:
    path = "/api/v1/namespaces/team-a/pods"
    api.lists[path] = fixture("pods-list.json")
    await discover(
        api,
        "pod",
        namespaces=KubernetesNamespacesConfig(names=["team-a"]),
        selectors=[KubernetesSelectorConfig(role="pod", label="app=web", field="spec.nodeName=n1")],
    )
    listed = api.requests[0]
    assert listed.path == path
    assert listed.query == {"labelSelector": "app=web", "fieldSelector": "spec.nodeName=n1"}


async def test_node_role(api: ReplayAPIServer) -> None:
    groups = await discover(api, "node")
    node = groups["node/node-1"]
    assert node.targets == [
        {
            "__address__": "192.168.1.10:10250",
            "instance": "node-1",
            M + "node_address_Hostname": "node-1",
            M + "node_address_InternalIP": "192.168.1.10",
        }
    ]
    assert node.labels[M + "node_name"] == "node-1"
    assert node.labels[M + "node_provider_id"] == "kind://docker/kind/node-1"
    assert node.labels[M + "node_label_node_role_kubernetes_io_control_plane"] == ""
    assert node.labels[M + "node_labelpresent_kubernetes_io_hostname"] == "true"
    assert node.labels[M + "node_annotation_node_alpha_kubernetes_io_ttl"] == "0"


async def test_service_role(api: ReplayAPIServer) -> None:
    groups = await discover(api, "service")
    web, ext = groups["svc/default/web"], groups["svc/default/ext"]
    assert web.labels == {
        M + "namespace": "default",
        M + "service_name": "web",
        M + "service_label_app": "web",
        M + "service_labelpresent_app": "true",
        M + "service_annotation_prometheus_io_port": "8080",
        M + "service_annotationpresent_prometheus_io_port": "true",
    }
    assert web.targets == [
        {
            "__address__": "web.default.svc:80",
            M + "service_port_name": "http",
            M + "service_port_number": "80",
            M + "service_port_protocol": "TCP",
            M + "service_type": "ClusterIP",
            M + "service_cluster_ip": "10.96.0.10",
        }
    ]
    assert ext.targets[0][M + "service_external_name"] == "db.example.com"
    assert M + "service_cluster_ip" not in ext.targets[0]


async def test_endpoints_role_links_service_and_pods(api: ReplayAPIServer) -> None:
    groups = await discover(api, "endpoints")
    group = groups["endpoints/default/web"]
    assert group.labels[M + "endpoints_name"] == "web"
    assert group.labels[M + "endpoints_label_app"] == "web"
    assert group.labels[M + "service_name"] == "web"
    ready, not_ready, extra = group.targets
    assert ready["__address__"] == "10.1.0.5:8080"
    assert ready[M + "endpoint_ready"] == "true"
    assert ready[M + "endpoint_port_name"] == "http"
    assert ready[M + "endpoint_port_protocol"] == "TCP"
    assert ready[M + "endpoint_node_name"] == "node-1"
    assert ready[M + "endpoint_address_target_kind"] == "Pod"
    assert ready[M + "endpoint_address_target_name"] == "web-0"
    assert ready[M + "pod_name"] == "web-0"
    assert ready[M + "pod_container_name"] == "app"
    assert ready[M + "pod_container_port_name"] == "http"
    assert not_ready == {
        "__address__": "10.1.0.6:8080",
        M + "endpoint_port_name": "http",
        M + "endpoint_port_protocol": "TCP",
        M + "endpoint_ready": "false",
        M + "endpoint_hostname": "web-1",
    }
    # The pod's other container port gets a target of its own.
    assert extra["__address__"] == "10.1.0.5:9090"
    assert extra[M + "pod_container_port_name"] == "metrics"


async def test_endpointslice_role(api: ReplayAPIServer) -> None:
    groups = await discover(api, "endpointslice")
    group = groups["endpointslice/default/web-abc12"]
    assert group.labels[M + "endpointslice_name"] == "web-abc12"
    assert group.labels[M + "endpointslice_address_type"] == "IPv4"
    assert group.labels[M + "endpointslice_label_kubernetes_io_service_name"] == "web"
    assert group.labels[M + "service_name"] == "web"
    target = group.targets[0]
    s = M + "endpointslice_"
    assert {k: v for k, v in target.items() if k.startswith(s) or k == "__address__"} == {
        "__address__": "10.1.0.5:8080",
        s + "port": "8080",
        s + "port_name": "http",
        s + "port_protocol": "TCP",
        s + "port_app_protocol": "http",
        s + "endpoint_conditions_ready": "true",
        s + "endpoint_conditions_serving": "true",
        s + "endpoint_conditions_terminating": "false",
        s + "endpoint_node_name": "node-1",
        s + "endpoint_zone": "zone-a",
        s + "address_target_kind": "Pod",
        s + "address_target_name": "web-0",
    }
    assert target[M + "pod_name"] == "web-0"
    assert [t["__address__"] for t in group.targets] == ["10.1.0.5:8080", "10.1.0.5:9090"]


async def test_ingress_role(api: ReplayAPIServer) -> None:
    groups = await discover(api, "ingress")
    group = groups["ingress/default/web"]
    assert group.labels[M + "ingress_name"] == "web"
    assert group.labels[M + "ingress_class_name"] == "nginx"
    assert [
        (t["__address__"], t[M + "ingress_scheme"], t[M + "ingress_host"], t[M + "ingress_path"])
        for t in group.targets
    ] == [
        ("web.example.com", "https", "web.example.com", "/"),
        ("web.example.com", "https", "web.example.com", "/api"),
        ("other.test", "http", "other.test", "/"),
    ]


def test_in_cluster_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("monitoring")
    monkeypatch.setenv(SERVICEACCOUNT_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    access = cluster_access(KubernetesSDConfig(role="pod"))
    assert access.server == "https://10.96.0.1:443"
    assert access.http.bearer_token_file == str(tmp_path / "token")
    assert access.http.tls_config.ca_file == str(tmp_path / "ca.crt")
    assert access.namespace == "monitoring"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ValueError, match="not in a cluster"):
        cluster_access(KubernetesSDConfig(role="pod"))


KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: {cluster: c1, user: u1, namespace: team-a}
- name: other
  context: {cluster: c1, user: u2}
clusters:
- name: c1
  cluster:
    server: {server}
    certificate-authority: ca.pem
    tls-server-name: api.internal
users:
- name: u1
  user: {token: kube-token}
- name: u2
  user: {username: admin, password: pw}
"""


async def test_kubeconfig_access(
    api: ReplayAPIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SERVICEACCOUNT_DIR_ENV, str(tmp_path / "absent"))
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.replace("{server}", api.url))
    access = cluster_access(KubernetesSDConfig(role="pod", kubeconfig_file=str(path)))
    assert access.server == api.url
    assert access.namespace == "team-a"
    assert access.http.tls_config.ca_file == str(tmp_path / "ca.pem")
    assert access.http.tls_config.server_name == "api.internal"
    assert access.http.bearer_token.reveal() == "kube-token"
    path.write_text(path.read_text().replace("current-context: dev", "current-context: nope"))
    with pytest.raises(ValueError, match="no context named 'nope'"):
        cluster_access(KubernetesSDConfig(role="pod", kubeconfig_file=str(path)))


async def test_own_namespace_from_kubeconfig(
    api: ReplayAPIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SERVICEACCOUNT_DIR_ENV, str(tmp_path / "absent"))
    path = tmp_path / "kubeconfig"
    path.write_text(
        KUBECONFIG.replace("{server}", api.url).replace("certificate-authority: ca.pem", "")
    )
    api.lists["/api/v1/namespaces/team-a/pods"] = fixture("pods-list.json")
    discoverer = KubernetesDiscoverer(
        KubernetesSDConfig(
            role="pod",
            kubeconfig_file=str(path),
            namespaces=KubernetesNamespacesConfig(own_namespace=True),
        )
    )
    running = Running(discoverer)
    try:
        await running.next_change()
    finally:
        await running.stop()
    assert api.requests[0].path == "/api/v1/namespaces/team-a/pods"
    assert api.requests[0].headers["authorization"] == "Bearer kube-token"


async def test_in_cluster_over_tls_with_the_service_account_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pki").mkdir()
    pki = http_helpers.make_pki(tmp_path / "pki")
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("sa-token-1\n")
    (account / "namespace").write_text("team-a\n")
    shutil.copy(pki.ca_file, account / "ca.crt")
    server = ReplayAPIServer()
    server.lists["/api/v1/namespaces/team-a/pods"] = fixture("pods-list.json")
    await server.start(http_helpers.server_ssl_context(pki))
    monkeypatch.setenv(SERVICEACCOUNT_DIR_ENV, str(account))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    own = KubernetesNamespacesConfig(own_namespace=True)
    running = Running(KubernetesDiscoverer(KubernetesSDConfig(role="pod", namespaces=own)))
    try:
        await running.next_change()
        assert running.groups["pod/default/web-0"].targets
        assert server.requests[0].headers["authorization"] == "Bearer sa-token-1"
        # The token file is read for each request, so a rotated token is used from then on.
        await server.wait_watch("/api/v1/namespaces/team-a/pods")
        (account / "token").write_text("sa-token-2\n")
        server.end_watch("/api/v1/namespaces/team-a/pods")
        await server.wait_watch("/api/v1/namespaces/team-a/pods", 2)
        assert server.requests[-1].headers["authorization"] == "Bearer sa-token-2"
    finally:
        await running.stop()
        await server.stop()


async def test_a_malformed_answer_is_reported_not_fatal(api: ReplayAPIServer) -> None:
    api.lists[PODS] = {"kind": "PodList", "metadata": {}, "items": {"not": "a list"}}
    running = Running(KubernetesDiscoverer(config(api, "pod"), retry=0.05))
    try:
        assert await running.error() == f"{PODS}: the list's items are not a list of objects"
        api.lists[PODS] = fixture("pods-list.json")
        await running.next_change()
        assert running.groups["pod/default/web-0"].targets
    finally:
        await running.stop()
