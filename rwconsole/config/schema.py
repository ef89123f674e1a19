"""Configuration dataclasses: the one description of every table and key.

Attribute names are exactly the TOML key names, which are Grafana Alloy's
``prometheus.remote_write`` argument and block names (``endpoint``,
``queue_config.max_shards``, …) plus rwconsole's own tables (``storage``,
``http``, ``scrape``, ``receiver``, ``synthetic``, ``demo``). Defaults are
Alloy's. Durations are ``float`` seconds; secrets are ``Secret`` objects.

Each field carries metadata used by the loader and the reference generator:
``doc`` (one line), ``kind`` (``"duration"`` for float-seconds fields written as
Go duration strings) and ``required``. The objects are frozen: change them with
``dataclasses.replace`` so that a snapshot handed to another thread never
changes under it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any

from rwconsole import relabel
from rwconsole.config.durations import format_duration
from rwconsole.config.secrets import Secret, redact_url

PROTOBUF_V1 = "prometheus.WriteRequest"
PROTOBUF_V2 = "io.prometheus.write.v2.Request"
PROTOBUF_MESSAGES = (PROTOBUF_V1, PROTOBUF_V2)
TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")
AZURE_CLOUDS = ("AzurePublic", "AzureChina", "AzureGovernment")
WAL_PAGE_SIZE = 32 * 1024


def _field(default: Any, doc: str, *, kind: str | None = None, required: bool = False) -> Any:
    meta = {"doc": doc, "kind": kind, "required": required}
    if isinstance(default, (list, dict)) or is_dataclass(default):
        template = default

        def factory() -> Any:
            if isinstance(template, list):
                return list(template)
            if isinstance(template, dict):
                return dict(template)
            return type(template)()

        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _duration(seconds: float, doc: str) -> Any:
    return _field(seconds, doc, kind="duration")


def _required(doc: str, default: Any = "") -> Any:
    return _field(default, doc, required=True)


def _safe_repr(self: Any) -> str:
    # Like the generated repr, but URL fields hide a password written in the URL
    # (user:pass@host); Secret fields already render as <secret>.
    parts = []
    for f in fields(self):
        value = getattr(self, f.name)
        if f.name.endswith("url") and isinstance(value, str):
            value = redact_url(value)
        parts.append(f"{f.name}={value!r}")
    return f"{type(self).__name__}({', '.join(parts)})"


def _frozen(cls: type) -> Any:
    made = dataclass(frozen=True, kw_only=True, repr=False)(cls)
    made.__repr__ = _safe_repr  # type: ignore[method-assign]
    return made


# --- HTTP client blocks (shared by endpoints and scrape jobs) ---------------------------


@_frozen
class BasicAuthConfig:
    """HTTP basic authentication."""

    username: str = _field("", "Basic auth username.")
    password: Secret | None = _field(None, "Basic auth password.")
    password_file: str = _field("", "File containing the basic auth password.")


@_frozen
class AuthorizationConfig:
    """Generic ``Authorization`` header credentials."""

    type: str = _field("Bearer", "Authorization type (scheme), e.g. Bearer.")
    credentials: Secret | None = _field(None, "Secret value for the Authorization header.")
    credentials_file: str = _field("", "File containing the credentials.")


@_frozen
class TLSConfig:
    """TLS settings for connecting to the server."""

    ca_pem: str = _field("", "CA PEM-encoded text to validate the server with.")
    ca_file: str = _field("", "CA certificate file to validate the server with.")
    cert_pem: str = _field("", "Client certificate PEM-encoded text.")
    cert_file: str = _field("", "Client certificate file.")
    key_pem: Secret | None = _field(None, "Client key PEM-encoded text.")
    key_file: str = _field("", "Client key file.")
    insecure_skip_verify: bool = _field(False, "Disable validation of the server certificate.")
    server_name: str = _field("", "ServerName extension to indicate the name of the server.")
    min_version: str = _field(
        "", "Minimum TLS version: TLS10, TLS11, TLS12 or TLS13 (empty: TLS12)."
    )


@_frozen
class OAuth2Config:
    """OAuth 2.0 client-credentials authentication."""

    client_id: str = _required("OAuth2 client ID.")
    client_secret: Secret | None = _field(None, "OAuth2 client secret.")
    client_secret_file: str = _field("", "File containing the OAuth2 client secret.")
    scopes: list[str] = _field([], "Scopes to request.")
    token_url: str = _required("URL to fetch the token from.")
    endpoint_params: dict[str, str] = _field({}, "Extra parameters appended to the token URL.")
    proxy_url: str = _field("", "HTTP proxy for token requests.")
    no_proxy: str = _field("", "Comma-separated hosts/CIDRs excluded from proxying.")
    proxy_from_environment: bool = _field(False, "Use the proxy from HTTP(S)_PROXY/NO_PROXY.")
    proxy_connect_header: dict[str, list[Secret]] = _field(
        {}, "Headers sent to the proxy in CONNECT requests."
    )
    tls_config: TLSConfig = _field(TLSConfig(), "TLS settings for token requests.")


@_frozen
class HTTPClientConfig:
    """HTTP client options common to remote-write endpoints and scrape jobs."""

    bearer_token: Secret | None = _field(None, "Bearer token to authenticate with.")
    bearer_token_file: str = _field("", "File containing a bearer token.")
    http_headers: dict[str, list[Secret]] = _field(
        {}, "Custom headers (values are secrets; a list of values per name)."
    )
    proxy_url: str = _field("", "HTTP proxy to send requests through.")
    no_proxy: str = _field("", "Comma-separated hosts/CIDRs excluded from proxying.")
    proxy_from_environment: bool = _field(False, "Use the proxy from HTTP(S)_PROXY/NO_PROXY.")
    proxy_connect_header: dict[str, list[Secret]] = _field(
        {}, "Headers sent to the proxy in CONNECT requests."
    )
    follow_redirects: bool = _field(True, "Follow HTTP redirects.")
    enable_http2: bool = _field(True, "Allow HTTP/2.")
    basic_auth: BasicAuthConfig | None = _field(None, "Basic authentication.")
    authorization: AuthorizationConfig | None = _field(None, "Authorization header credentials.")
    oauth2: OAuth2Config | None = _field(None, "OAuth 2.0 authentication.")
    tls_config: TLSConfig = _field(TLSConfig(), "TLS settings.")


# --- remote-write endpoint --------------------------------------------------------------


@_frozen
class SigV4Config:
    """AWS Signature Version 4 authentication."""

    region: str = _field("", "AWS region (empty: from the default credentials chain).")
    access_key: str = _field("", "AWS access key (empty: AWS_ACCESS_KEY_ID).")
    secret_key: Secret | None = _field(None, "AWS secret key (empty: AWS_SECRET_ACCESS_KEY).")
    profile: str = _field("", "Named AWS profile.")
    role_arn: str = _field("", "AWS role ARN to assume.")


@_frozen
class ManagedIdentityConfig:
    """Azure user-assigned managed identity."""

    client_id: str = _required("Client ID (UUID) of the managed identity.")


@_frozen
class AzureOAuthConfig:
    """Azure AD application (OAuth) credentials."""

    client_id: str = _required("Client ID (UUID) of the application.")
    client_secret: Secret | None = _required("Client secret of the application.", None)
    tenant_id: str = _required("Tenant ID of the application.")


@_frozen
class AzureSDKConfig:
    """Azure SDK default credential chain."""

    tenant_id: str = _field("", "Tenant ID (optional).")


@_frozen
class AzureADConfig:
    """Azure AD authentication; exactly one of managed_identity, oauth, sdk."""

    cloud: str = _field("AzurePublic", "AzurePublic, AzureChina or AzureGovernment.")
    managed_identity: ManagedIdentityConfig | None = _field(None, "Managed identity.")
    oauth: AzureOAuthConfig | None = _field(None, "OAuth application credentials.")
    sdk: AzureSDKConfig | None = _field(None, "Azure SDK credentials.")


@_frozen
class QueueConfig:
    """How samples are batched and sent (one queue per endpoint)."""

    capacity: int = _field(10000, "Samples buffered per shard.")
    max_shards: int = _field(50, "Maximum concurrent shards.")
    min_shards: int = _field(1, "Minimum concurrent shards.")
    max_samples_per_send: int = _field(2000, "Maximum samples per request.")
    batch_send_deadline: float = _duration(5.0, "Maximum time a sample waits in a batch.")
    min_backoff: float = _duration(0.03, "Initial retry delay (doubles per retry).")
    max_backoff: float = _duration(5.0, "Maximum retry delay.")
    retry_on_http_429: bool = _field(True, "Retry on HTTP 429 (honouring Retry-After).")
    sample_age_limit: float = _duration(0.0, "Drop samples older than this (0s: off).")


@_frozen
class MetadataConfig:
    """How metric metadata is sent."""

    send: bool = _field(True, "Send metric metadata.")
    send_interval: float = _duration(60.0, "How often metadata is sent.")
    max_samples_per_send: int = _field(2000, "Maximum metadata entries per request.")


@_frozen
class RelabelConfig:
    """One write relabelling rule, applied in order to each series before sending."""

    source_labels: list[str] = _field([], "Labels whose values are joined and matched.")
    separator: str = _field(
        relabel.DEFAULT_SEPARATOR, "Separator between joined source label values."
    )
    regex: str = _field(relabel.DEFAULT_REGEX, "RE2 regular expression (anchored at both ends).")
    modulus: int = _field(relabel.DEFAULT_MODULUS, "Modulus for the hashmod action.")
    target_label: str = _field("", "Label written by replace/hashmod/lowercase/uppercase/...")
    replacement: str = _field(
        relabel.DEFAULT_REPLACEMENT, "Replacement value; $1, ${name} refer to regex groups."
    )
    action: str = _field(relabel.DEFAULT_ACTION, "One of " + ", ".join(relabel.ACTIONS) + ".")


@_frozen
class EndpointConfig(HTTPClientConfig):
    """A remote-write destination; one queue each."""

    url: str = _required("Full URL to send metrics to (http or https).")
    name: str = _field(
        "",
        "Identity of the endpoint: its delivery progress, metrics and console name "
        "(default: a hash of url and protobuf_message).",
    )
    backfill: bool = _field(
        False,
        "A new endpoint starts at the oldest retained WAL record instead of the WAL end.",
    )
    remote_timeout: float = _duration(30.0, "Timeout for each HTTP request.")
    headers: dict[str, Secret] = _field(
        {}, "Extra headers for every request (values are treated as secrets)."
    )
    send_exemplars: bool = _field(True, "Send exemplars.")
    send_native_histograms: bool = _field(False, "Send native histograms.")
    protobuf_message: str = _field(
        PROTOBUF_V1, f"{PROTOBUF_V1} (remote write 1.0) or {PROTOBUF_V2} (2.0)."
    )
    sigv4: SigV4Config | None = _field(None, "AWS SigV4 authentication.")
    azuread: AzureADConfig | None = _field(None, "Azure AD authentication.")
    queue_config: QueueConfig = _field(QueueConfig(), "Queue tuning.")
    metadata_config: MetadataConfig = _field(MetadataConfig(), "Metadata sending.")
    write_relabel_config: list[RelabelConfig] = _field([], "Relabel rules, in order.")
    protocol_reprobe_interval: float = _duration(
        3600.0,
        "After a receiver refused remote write 2.0 (HTTP 415, or 2xx without Written "
        "headers) the endpoint sends 1.0; 2.0 is tried again after this long (rwconsole extra).",
    )

    def queue_name(self) -> str:
        """``name``, or the first 6 hex digits of an md5 of ``url`` and ``protobuf_message``.

        Only what decides where the data goes identifies an unnamed endpoint, so
        tuning its queue, headers, auth, TLS, relabelling or metadata keeps its
        name and with it its delivery progress.
        """
        if self.name:
            return self.name
        text = json.dumps([self.url, self.protobuf_message], separators=(",", ":"))
        return hashlib.md5(text.encode("utf-8")).hexdigest()[:6]

    def legacy_queue_name(self) -> str:
        """The name earlier versions derived from the whole endpoint config (for migration)."""
        text = json.dumps(_hashable(self), sort_keys=True, separators=(",", ":"))
        return hashlib.md5(text.encode("utf-8")).hexdigest()[:6]


def _hashable(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.reference or str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _hashable(getattr(value, f.name))
            for f in fields(value)
            if f.name not in _NEWER_FIELDS
        }
    if isinstance(value, dict):
        return {str(k): _hashable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hashable(v) for v in value]
    return value


_NEWER_FIELDS = frozenset({"backfill", "protocol_reprobe_interval"})
"""Keys added after the legacy name scheme; left out so old names are reproduced."""


# --- WAL and rwconsole's own tables -----------------------------------------------------


WAL_ON_FULL = ("drop_oldest", "reject")


@_frozen
class WALConfig:
    """The write-ahead log shared by all endpoints."""

    truncate_frequency: float = _duration(7200.0, "How often the WAL is truncated.")
    min_keepalive_time: float = _duration(300.0, "Minimum age before data may be truncated.")
    max_keepalive_time: float = _duration(
        28800.0, "Data older than this is truncated even if unsent."
    )
    compression: bool = _field(True, "Snappy-compress WAL records (rwconsole extra).")
    segment_size: int = _field(
        128 * 1024 * 1024,
        "Segment file size in bytes: a multiple of 32768, 65536..268435456 (rwconsole extra).",
    )
    max_size: int = _field(
        0,
        'Disk budget of the WAL (segments and checkpoint), bytes or a size like "512MiB" or '
        '"20GB"; at least two segments; 0 = unlimited (rwconsole extra).',
        kind="size",
    )
    spool_max_size: int = _field(
        1024 * 1024 * 1024,
        "Disk for request bodies encoded ahead while an endpoint is behind (all endpoints "
        "together; a copy of WAL data that always leaves free at least as much as it uses, "
        '2 segments and 10 % of the filesystem), bytes or a size like "1GiB"; 0 = off; '
        "off as well with max_size, whose bytes hold more samples in the WAL (rwconsole extra).",
        kind="size",
    )
    on_full: str = _field(
        "drop_oldest",
        'At max_size: "drop_oldest" truncates the oldest segments even if undelivered '
        '(counted per endpoint), "reject" refuses new data (rwconsole extra).',
    )


@_frozen
class StorageConfig:
    """Where rwconsole keeps its data."""

    path: str = _field("data-rwconsole", "Data directory (WAL, delivery progress).")


@_frozen
class HTTPServerConfig:
    """rwconsole's own HTTP server (self-metrics)."""

    listen_address: str = _field("127.0.0.1:12345", "host:port to listen on.")
    enable_lifecycle: bool = _field(
        False, "Accept POST/PUT /-/reload (re-read the config file and apply it in place)."
    )


@_frozen
class AdminConfig:
    """The admin API (attach, ctl): a Unix socket in the data directory, optionally TCP."""

    socket: bool = _field(True, "Serve the admin API on <storage.path>/rwconsole.sock (mode 0600).")
    listen_address: str = _field(
        "", "host:port for the admin API over TCP (empty: none); needs TLS or a bearer token."
    )
    bearer_token: Secret | None = _field(None, "Bearer token TCP clients must send.")
    bearer_token_file: str = _field("", "File containing the bearer token.")
    tls_cert_file: str = _field("", "Server certificate file (TLS on listen_address).")
    tls_key_file: str = _field("", "Server private key file.")
    client_ca_file: str = _field("", "CA that must have signed client certificates (mTLS).")


# --- service discovery (sub-tables of [[scrape]]) ---------------------------------------

SD_DNS_TYPES = ("SRV", "A", "AAAA", "MX", "NS")
SD_KUBERNETES_ROLES = ("node", "pod", "service", "endpoints", "endpointslice", "ingress")


@_frozen
class StaticSDConfig:
    """A fixed group of targets with common labels."""

    targets: list[str] = _field([], "Targets as host:port.")
    labels: dict[str, str] = _field({}, "Labels added to every target of the group.")


@_frozen
class FileSDConfig:
    """Target groups read from JSON or YAML files (re-read on change and on an interval)."""

    files: list[str] = _required("File paths; globs such as dir/*.json are allowed.", [])
    refresh_interval: float = _duration(300.0, "How often the files are re-read.")


@_frozen
class HTTPSDConfig(HTTPClientConfig):
    """Target groups fetched from an HTTP endpoint in Prometheus' HTTP SD format."""

    url: str = _required("URL to fetch the target groups from (http or https).")
    refresh_interval: float = _duration(60.0, "How often the URL is fetched.")


@_frozen
class DNSSDConfig:
    """Targets from DNS records, re-resolved on an interval."""

    names: list[str] = _required("DNS names to query.", [])
    type: str = _field("SRV", "Record type: " + ", ".join(SD_DNS_TYPES) + ".")
    port: int = _field(0, "Port of the targets (required unless type is SRV, which has ports).")
    refresh_interval: float = _duration(30.0, "How often the names are resolved.")


@_frozen
class KubernetesNamespacesConfig:
    """Which namespaces are watched (none: all)."""

    names: list[str] = _field([], "Namespace names.")
    own_namespace: bool = _field(False, "Also watch the namespace rwconsole runs in.")


@_frozen
class KubernetesSelectorConfig:
    """A label and/or field selector for one role's objects."""

    role: str = _required("Role the selector applies to.")
    label: str = _field("", "Label selector, e.g. app=web,tier!=db.")
    field: str = _field("", "Field selector, e.g. spec.nodeName=n1.")


@_frozen
class KubernetesSDConfig(HTTPClientConfig):
    """Targets from the Kubernetes API (list and watch)."""

    role: str = _required("One of " + ", ".join(SD_KUBERNETES_ROLES) + ".")
    api_server: str = _field("", "API server URL (empty: kubeconfig_file or in-cluster).")
    kubeconfig_file: str = _field("", "kubeconfig file (its current context is used).")
    namespaces: KubernetesNamespacesConfig = _field(
        KubernetesNamespacesConfig(), "Namespaces to watch."
    )
    selectors: list[KubernetesSelectorConfig] = _field([], "Selectors per role.")


@_frozen
class ScrapeConfig(HTTPClientConfig):
    """A scrape job: targets scraped on an interval and written to the WAL."""

    job_name: str = _required("Job name, added as the job label.")
    targets: list[str] = _field([], "Targets as host:port (shorthand for a static_configs group).")
    scrape_interval: float = _duration(60.0, "How often to scrape.")
    scrape_timeout: float = _duration(
        10.0, "Per-scrape timeout, <= scrape_interval (default: 10s or the interval if shorter)."
    )
    metrics_path: str = _field("/metrics", "HTTP path to scrape.")
    scheme: str = _field("http", "http or https.")
    params: dict[str, list[str]] = _field({}, "URL query parameters.")
    honor_labels: bool = _field(False, "Keep scraped labels that clash with target labels.")
    honor_timestamps: bool = _field(True, "Keep timestamps present in scraped data.")
    start_timestamps: bool = _field(
        False,
        "Take OpenMetrics `_created` samples as the start timestamp of their counter, "
        "histogram and summary samples (sent as remote write 2.0 `start_timestamp`); "
        "the `_created` series are stored either way.",
    )
    labels: dict[str, str] = _field({}, "Extra labels added to every scraped series.")
    static_configs: list[StaticSDConfig] = _field([], "Static target groups.")
    file_sd_configs: list[FileSDConfig] = _field([], "File-based service discovery.")
    http_sd_configs: list[HTTPSDConfig] = _field([], "HTTP-based service discovery.")
    dns_sd_configs: list[DNSSDConfig] = _field([], "DNS-based service discovery.")
    kubernetes_sd_configs: list[KubernetesSDConfig] = _field([], "Kubernetes service discovery.")
    relabel_configs: list[RelabelConfig] = _field(
        [], "Relabel rules applied to each discovered target before it is scraped."
    )
    metric_relabel_configs: list[RelabelConfig] = _field(
        [], "Relabel rules applied to each scraped series before it is written to the WAL."
    )
    body_size_limit: int | None = _field(
        None, "Bytes of decompressed body above which a scrape fails (0: none; unset: default)."
    )
    sample_limit: int | None = _field(
        None, "Samples per scrape, after metric relabelling, above which it fails (0: none)."
    )
    label_limit: int | None = _field(
        None, "Labels per series, after metric relabelling, above which a scrape fails."
    )
    label_name_length_limit: int | None = _field(
        None, "Length of a label name above which a scrape fails (0: none)."
    )
    label_value_length_limit: int | None = _field(
        None, "Length of a label value above which a scrape fails (0: none)."
    )
    target_limit: int | None = _field(
        None, "Targets after relabelling above which every scrape of the job fails (0: none)."
    )


SCRAPE_LIMITS = (
    "body_size_limit",
    "sample_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "target_limit",
)


@_frozen
class ScrapeDefaultsConfig:
    """Limits for every scrape job that does not set its own (0: no limit)."""

    body_size_limit: int = _field(0, "Bytes of decompressed body above which a scrape fails.")
    sample_limit: int = _field(0, "Samples per scrape, after metric relabelling.")
    label_limit: int = _field(0, "Labels per series, after metric relabelling.")
    label_name_length_limit: int = _field(0, "Length of a label name.")
    label_value_length_limit: int = _field(0, "Length of a label value.")
    target_limit: int = _field(0, "Targets per job after relabelling.")


CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
"""``client_auth_type`` values, named as in Prometheus' web config."""


@_frozen
class ReceiverTLSConfig:
    """TLS of the receiver (server side): its certificate, and client certificates."""

    cert_pem: str = _field("", "Server certificate PEM-encoded text.")
    cert_file: str = _field("", "Server certificate file.")
    key_pem: Secret | None = _field(None, "Server key PEM-encoded text.")
    key_file: str = _field("", "Server key file.")
    ca_pem: str = _field("", "CA PEM-encoded text to validate client certificates with.")
    ca_file: str = _field("", "CA certificate file to validate client certificates with.")
    client_auth_type: str = _field(
        "NoClientCert",
        "NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or "
        "RequireAndVerifyClientCert (as in Prometheus' web config; every mode but "
        "NoClientCert needs ca_pem or ca_file: client certificates are always verified).",
    )
    min_version: str = _field(
        "", "Minimum TLS version: TLS10, TLS11, TLS12 or TLS13 (empty: TLS12)."
    )


@_frozen
class ReceiverConfig:
    """Accepts remote-write pushes on POST /api/v1/write."""

    listen_address: str = _field("127.0.0.1:9201", "host:port to listen on.")
    tls_config: ReceiverTLSConfig | None = _field(
        None, "Serve HTTPS (and optionally require client certificates)."
    )
    basic_auth_users: dict[str, Secret] = _field(
        {},
        "Users allowed in with HTTP basic auth: name = password (a string, { env = ... } or "
        "{ file = ... }; plain secrets, not bcrypt hashes).",
    )
    bearer_tokens: list[Secret] = _field(
        [], "Bearer tokens allowed in (strings, { env = ... } or { file = ... })."
    )


@_frozen
class SyntheticConfig:
    """Synthetic series generator (a source for trying rwconsole out)."""

    series: int = _field(1000, "Number of series.")
    metrics: int = _field(10, "Number of metric names the series are spread over.")
    interval: float = _duration(15.0, "Time between samples of a series.")
    churn: float = _field(0.0, "Fraction (0..1) of series replaced by new ones per interval.")
    histograms: bool = _field(False, "Include classic histograms among the metrics.")
    exemplars: bool = _field(False, "Attach exemplars to some samples.")
    labels: dict[str, str] = _field({}, "Extra labels on every series.")


@_frozen
class DemoConfig:
    """Demo pipeline switch (set by the CLI)."""

    enabled: bool = _field(False, "Run the embedded receiver as an extra endpoint target.")


@_frozen
class Config:
    """Top level of the configuration file."""

    external_labels: dict[str, str] = _field({}, "Labels added to every series sent.")
    endpoint: list[EndpointConfig] = _field([], "Remote-write endpoints ([[endpoint]]).")
    wal: WALConfig = _field(WALConfig(), "WAL settings.")
    storage: StorageConfig = _field(StorageConfig(), "Storage settings.")
    http: HTTPServerConfig = _field(HTTPServerConfig(), "HTTP server settings.")
    scrape: list[ScrapeConfig] = _field([], "Scrape jobs ([[scrape]]).")
    receiver: ReceiverConfig | None = _field(None, "Remote-write receiver source.")
    synthetic: SyntheticConfig | None = _field(None, "Synthetic source.")
    demo: DemoConfig = _field(DemoConfig(), "Demo settings.")
    scrape_defaults: ScrapeDefaultsConfig = _field(
        ScrapeDefaultsConfig(), "Scrape limits for jobs that do not set their own."
    )
    admin: AdminConfig = _field(AdminConfig(), "Admin API settings.")

    def has_source(self) -> bool:
        """Whether any source (scrape, receiver, synthetic) is configured."""
        return bool(self.scrape) or self.receiver is not None or self.synthetic is not None


def ordered_fields(cls: Any) -> list[Field[Any]]:
    """Fields in presentation order: required keys, the class's own keys, inherited keys."""
    klass = cls if isinstance(cls, type) else type(cls)
    own = set(inspect.get_annotations(klass))
    all_fields = list(fields(klass))
    required = [f for f in all_fields if f.metadata.get("required")]
    rest = [f for f in all_fields if not f.metadata.get("required")]
    return required + [f for f in rest if f.name in own] + [f for f in rest if f.name not in own]


def describe_default(cls: type, name: str) -> str:
    """The default of ``cls.name`` as it would be written in TOML (``""`` when none)."""
    for f in fields(cls):
        if f.name != name:
            continue
        if f.metadata.get("required"):
            return ""
        if f.default is not MISSING:
            value = f.default
        elif f.default_factory is not MISSING:
            value = f.default_factory()
        else:
            return ""
        if value is None or is_dataclass(value) or value in ({}, []):
            return ""
        if f.metadata.get("kind") == "duration":
            return json.dumps(format_duration(value))
        return json.dumps(value)
    raise KeyError(name)
