"""Target groups from Kubernetes objects (decoded API JSON), one function per role.

Label names and group sources are Prometheus' (``__meta_kubernetes_*``;
sources such as ``pod/<namespace>/<name>``). Objects are plain dicts as the
API returns them; a missing field reads as empty. ``Lookup`` gives the
endpoints and endpointslice roles the service and pods they refer to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rwconsole.sources.discovery.common import ADDRESS_LABEL, TargetGroup, sanitize_label_name

P = "__meta_kubernetes_"
NAMESPACE_LABEL = P + "namespace"
_NODE_ADDRESS_ORDER = ("InternalIP", "ExternalIP", "LegacyHostIP", "Hostname")

Obj = dict[str, Any]
# (kind, namespace, name) -> the object, or None
Lookup = Callable[[str, str, str], Obj | None]


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def object_key(obj: Obj) -> str:
    meta = _meta(obj)
    namespace = meta.get("namespace") or ""
    return f"{namespace}/{meta.get('name', '')}" if namespace else str(meta.get("name", ""))


def _join(host: str, port: object) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bool(value: object) -> str:
    return "true" if value else "false"


def _add_meta_labels(labels: dict[str, str], obj: Obj, role: str) -> None:
    """``<role>_name`` plus labels and annotations with their ``*present_`` twins."""
    meta = _meta(obj)
    labels[f"{P}{role}_name"] = meta.get("name", "")
    for kind, present, values in (
        ("label", "labelpresent", meta.get("labels")),
        ("annotation", "annotationpresent", meta.get("annotations")),
    ):
        for key, value in (values or {}).items():
            name = sanitize_label_name(key)
            labels[f"{P}{role}_{kind}_{name}"] = str(value)
            labels[f"{P}{role}_{present}_{name}"] = "true"


# --- node -----------------------------------------------------------------------------


def build_node(node: Obj) -> TargetGroup:
    name = _meta(node).get("name", "")
    group = TargetGroup(f"node/{name}")
    group.labels[P + "node_provider_id"] = (node.get("spec") or {}).get("providerID", "")
    _add_meta_labels(group.labels, node, "node")
    status = node.get("status") or {}
    by_type: dict[str, str] = {}
    for address in status.get("addresses") or []:
        by_type.setdefault(address.get("type", ""), address.get("address", ""))
    chosen = next((by_type[t] for t in _NODE_ADDRESS_ORDER if by_type.get(t)), "")
    if not chosen:
        return group
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port", 0)
    target = {ADDRESS_LABEL: _join(chosen, port), "instance": name}
    for kind, address in by_type.items():
        target[f"{P}node_address_{sanitize_label_name(kind)}"] = address
    group.targets.append(target)
    return group


# --- pod ------------------------------------------------------------------------------


def pod_labels(pod: Obj) -> dict[str, str]:
    """The pod's labels shared by the pod, endpoints and endpointslice roles."""
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    meta = _meta(pod)
    ready = "unknown"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            ready = str(condition.get("status", "Unknown")).lower()
    labels = {
        P + "pod_name": meta.get("name", ""),
        P + "pod_ip": status.get("podIP", ""),
        P + "pod_ready": ready,
        P + "pod_phase": status.get("phase", ""),
        P + "pod_node_name": spec.get("nodeName", ""),
        P + "pod_host_ip": status.get("hostIP", ""),
        P + "pod_uid": meta.get("uid", ""),
    }
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller"):
            if owner.get("kind"):
                labels[P + "pod_controller_kind"] = owner["kind"]
            if owner.get("name"):
                labels[P + "pod_controller_name"] = owner["name"]
            break
    _add_meta_labels(labels, pod, "pod")
    return labels


def _container_id(statuses: Iterable[Obj], name: str) -> str:
    return next((s.get("containerID", "") for s in statuses if s.get("name") == name), "")


def build_pod(pod: Obj) -> TargetGroup:
    meta = _meta(pod)
    group = TargetGroup(f"pod/{meta.get('namespace', '')}/{meta.get('name', '')}")
    status = pod.get("status") or {}
    ip = status.get("podIP", "")
    if not ip:  # starting or evicted
        return group
    group.labels = pod_labels(pod)
    group.labels[NAMESPACE_LABEL] = meta.get("namespace", "")
    spec = pod.get("spec") or {}
    for init, containers, statuses in (
        (False, spec.get("containers") or [], status.get("containerStatuses") or []),
        (True, spec.get("initContainers") or [], status.get("initContainerStatuses") or []),
    ):
        for container in containers:
            base = {
                P + "pod_container_name": container.get("name", ""),
                P + "pod_container_id": _container_id(statuses, container.get("name", "")),
                P + "pod_container_image": container.get("image", ""),
                P + "pod_container_init": _bool(init),
            }
            ports = container.get("ports") or []
            if not ports:
                address = f"[{ip}]" if ":" in ip else ip
                group.targets.append({ADDRESS_LABEL: address, **base})
            for port in ports:
                number = str(port.get("containerPort", ""))
                group.targets.append(
                    {ADDRESS_LABEL: _join(ip, number), **base, **_container_port(port)}
                )
    return group


def _container_port(port: Obj) -> dict[str, str]:
    return {
        P + "pod_container_port_name": port.get("name", ""),
        P + "pod_container_port_number": str(port.get("containerPort", "")),
        P + "pod_container_port_protocol": port.get("protocol", "TCP"),
    }


# --- service --------------------------------------------------------------------------


def service_labels(service: Obj) -> dict[str, str]:
    labels = {NAMESPACE_LABEL: _meta(service).get("namespace", "")}
    _add_meta_labels(labels, service, "service")
    return labels


def build_service(service: Obj) -> TargetGroup:
    meta = _meta(service)
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    group = TargetGroup(f"svc/{namespace}/{name}", labels=service_labels(service))
    spec = service.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    for port in spec.get("ports") or []:
        target = {
            ADDRESS_LABEL: _join(f"{name}.{namespace}.svc", port.get("port", "")),
            P + "service_port_name": port.get("name", ""),
            P + "service_port_number": str(port.get("port", "")),
            P + "service_port_protocol": port.get("protocol", "TCP"),
            P + "service_type": kind,
        }
        if kind == "ExternalName":
            target[P + "service_external_name"] = spec.get("externalName", "")
        else:
            target[P + "service_cluster_ip"] = spec.get("clusterIP", "")
        group.targets.append(target)
    return group


# --- endpoints and endpointslice ------------------------------------------------------


class _PodTargets:
    """Links endpoint addresses to their pods and adds the pods' uncovered container ports."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._seen: dict[str, tuple[Obj, set[int]]] = {}

    def link(self, target: dict[str, str], ref: Obj | None, port: int | None) -> None:
        if not ref or ref.get("kind") != "Pod":
            return
        pod = self._lookup("pod", ref.get("namespace", ""), ref.get("name", ""))
        if pod is None:
            return
        entry = self._seen.setdefault(object_key(pod), (pod, set()))
        target.update(pod_labels(pod))
        for container in (pod.get("spec") or {}).get("containers") or []:
            for cport in container.get("ports") or []:
                if port is not None and cport.get("containerPort") == port:
                    target[P + "pod_container_name"] = container.get("name", "")
                    target[P + "pod_container_image"] = container.get("image", "")
                    target.update(_container_port(cport))
                    break
        if port is not None:
            entry[1].add(port)

    def extra_targets(self) -> list[dict[str, str]]:
        extra: list[dict[str, str]] = []
        for pod, covered in self._seen.values():
            ip = (pod.get("status") or {}).get("podIP", "")
            if not ip:
                continue
            for container in (pod.get("spec") or {}).get("containers") or []:
                for cport in container.get("ports") or []:
                    if cport.get("containerPort") in covered:
                        continue
                    target = {
                        ADDRESS_LABEL: _join(ip, cport.get("containerPort", "")),
                        P + "pod_container_name": container.get("name", ""),
                        P + "pod_container_image": container.get("image", ""),
                        **_container_port(cport),
                    }
                    target.update(pod_labels(pod))
                    extra.append(target)
        return extra


def _add_service(group: TargetGroup, namespace: str, name: str | None, lookup: Lookup) -> None:
    service = lookup("service", namespace, name) if name else None
    if service is not None:
        group.labels.update(service_labels(service))


def build_endpoints(endpoints: Obj, lookup: Lookup) -> TargetGroup:
    meta = _meta(endpoints)
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    group = TargetGroup(f"endpoints/{namespace}/{name}", labels={NAMESPACE_LABEL: namespace})
    _add_meta_labels(group.labels, endpoints, "endpoints")
    _add_service(group, namespace, name, lookup)
    pods = _PodTargets(lookup)
    for subset in endpoints.get("subsets") or []:
        for port in subset.get("ports") or []:
            for ready, key in (("true", "addresses"), ("false", "notReadyAddresses")):
                for address in subset.get(key) or []:
                    target = {
                        ADDRESS_LABEL: _join(address.get("ip", ""), port.get("port", "")),
                        P + "endpoint_port_name": port.get("name", ""),
                        P + "endpoint_port_protocol": port.get("protocol", "TCP"),
                        P + "endpoint_ready": ready,
                    }
                    if port.get("appProtocol"):
                        target[P + "endpoint_port_app_protocol"] = port["appProtocol"]
                    if address.get("hostname"):
                        target[P + "endpoint_hostname"] = address["hostname"]
                    if address.get("nodeName"):
                        target[P + "endpoint_node_name"] = address["nodeName"]
                    ref = address.get("targetRef")
                    if ref:
                        target[P + "endpoint_address_target_kind"] = ref.get("kind", "")
                        target[P + "endpoint_address_target_name"] = ref.get("name", "")
                    pods.link(target, ref, port.get("port"))
                    group.targets.append(target)
    group.targets.extend(pods.extra_targets())
    return group


def build_endpointslice(eps: Obj, lookup: Lookup) -> TargetGroup:
    meta = _meta(eps)
    namespace = meta.get("namespace", "")
    group = TargetGroup(
        f"endpointslice/{namespace}/{meta.get('name', '')}",
        labels={
            NAMESPACE_LABEL: namespace,
            P + "endpointslice_address_type": eps.get("addressType", ""),
        },
    )
    _add_meta_labels(group.labels, eps, "endpointslice")
    service = (meta.get("labels") or {}).get("kubernetes.io/service-name")
    _add_service(group, namespace, service, lookup)
    pods = _PodTargets(lookup)
    s = P + "endpointslice_"
    for endpoint in eps.get("endpoints") or []:
        conditions = endpoint.get("conditions") or {}
        for port in eps.get("ports") or []:
            for address in endpoint.get("addresses") or []:
                number = port.get("port")
                target = {ADDRESS_LABEL: address if number is None else _join(address, number)}
                for label, value in (
                    ("port_name", port.get("name")),
                    ("port_protocol", port.get("protocol")),
                    ("port", None if number is None else str(number)),
                    ("port_app_protocol", port.get("appProtocol")),
                    ("endpoint_hostname", endpoint.get("hostname")),
                    ("endpoint_node_name", endpoint.get("nodeName")),
                    ("endpoint_zone", endpoint.get("zone")),
                ):
                    if value is not None:
                        target[s + label] = value
                for condition in ("ready", "serving", "terminating"):
                    if conditions.get(condition) is not None:
                        target[f"{s}endpoint_conditions_{condition}"] = _bool(conditions[condition])
                ref = endpoint.get("targetRef")
                if ref:
                    target[s + "address_target_kind"] = ref.get("kind", "")
                    target[s + "address_target_name"] = ref.get("name", "")
                pods.link(target, ref, number)
                group.targets.append(target)
    group.targets.extend(pods.extra_targets())
    return group


# --- ingress --------------------------------------------------------------------------


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def build_ingress(ingress: Obj) -> TargetGroup:
    meta = _meta(ingress)
    namespace = meta.get("namespace", "")
    spec = ingress.get("spec") or {}
    group = TargetGroup(
        f"ingress/{namespace}/{meta.get('name', '')}", labels={NAMESPACE_LABEL: namespace}
    )
    _add_meta_labels(group.labels, ingress, "ingress")
    class_name = spec.get("ingressClassName") or (meta.get("annotations") or {}).get(
        "kubernetes.io/ingress.class"
    )
    if class_name:
        group.labels[P + "ingress_class_name"] = class_name
    tls_hosts = [h for tls in spec.get("tls") or [] for h in tls.get("hosts") or []]
    for rule in spec.get("rules") or []:
        host = rule.get("host", "")
        scheme = "https" if any(_host_matches(p, host) for p in tls_hosts) else "http"
        paths = [p.get("path") or "/" for p in (rule.get("http") or {}).get("paths") or []]
        for path in paths or ["/"]:
            group.targets.append(
                {
                    ADDRESS_LABEL: host,
                    P + "ingress_scheme": scheme,
                    P + "ingress_host": host,
                    P + "ingress_path": path,
                }
            )
    return group
