"""One case per validation rule: a bad config exits 1 and names the key path and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rwconsole.cli import main

EP = '[[endpoint]]\nurl = "http://127.0.0.1:9090/api/v1/write"\n'
UUID = "6f2b1c3e-8c1d-4a57-9a55-2f6f4c0d9e11"


def _check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str]:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    # --resolve: missing secret references are errors only then (a warning without it)
    code = main(["check-config", "--resolve", str(path)])
    captured = capsys.readouterr()
    return code, captured.err


# (id, config text, key path, message fragment)
CASES: list[tuple[str, str, str, str]] = [
    # --- endpoint basics
    ("url-required", '[[endpoint]]\nname = "a"\n', "endpoint[0].url", "is required"),
    ("url-scheme", '[[endpoint]]\nurl = "ftp://x/y"\n', "endpoint[0].url", "http or https"),
    ("url-host", '[[endpoint]]\nurl = "http:///write"\n', "endpoint[0].url", "no host"),
    ("url-port", '[[endpoint]]\nurl = "http://h:99999/"\n', "endpoint[0].url", "invalid URL"),
    ("timeout-unit", EP + 'remote_timeout = "30"\n', "endpoint[0].remote_timeout", "missing unit"),
    (
        "timeout-zero",
        EP + 'remote_timeout = "0s"\n',
        "endpoint[0].remote_timeout",
        "must be greater than 0s",
    ),
    ("timeout-negative", EP + 'remote_timeout = "-1s"\n', "endpoint[0].remote_timeout", "negative"),
    (
        "protobuf",
        EP + 'protobuf_message = "v2"\n',
        "endpoint[0].protobuf_message",
        "io.prometheus.write.v2.Request",
    ),
    (
        "header-reserved",
        EP + 'headers = { "Content-Type" = "x" }\n',
        "endpoint[0].headers.Content-Type",
        "reserved header",
    ),
    (
        "header-reserved-case",
        EP + 'headers = { "uSeR-aGeNt" = "x" }\n',
        "endpoint[0].headers.uSeR-aGeNt",
        "reserved header",
    ),
    (
        "header-amz",
        EP + 'headers = { "X-Amz-Date" = "x" }\n',
        "endpoint[0].headers.X-Amz-Date",
        "reserved header",
    ),
    (
        "header-authorization",
        EP + 'headers = { "authorization" = "Bearer x" }\n',
        "endpoint[0].headers.authorization",
        "basic_auth, authorization",
    ),
    (
        "header-name",
        EP + 'headers = { "Bad Header" = "x" }\n',
        'endpoint[0].headers."Bad Header"',
        "not a valid HTTP header name",
    ),
    (
        "header-value-newline",
        EP + 'headers = { "X-Api" = "a\\r\\nInjected: yes" }\n',
        "endpoint[0].headers.X-Api",
        "must not contain line breaks",
    ),
    (
        "http-headers-newline",
        EP + 'http_headers = { "X-Api" = ["ok", "b\\nc"] }\n',
        "endpoint[0].http_headers.X-Api",
        "must not contain line breaks",
    ),
    (
        "http-headers-reserved",
        EP + 'http_headers = { "Host" = ["x"] }\n',
        "endpoint[0].http_headers.Host",
        "reserved header",
    ),
    # --- authentication
    (
        "auth-two",
        EP + 'bearer_token = "t"\n[endpoint.basic_auth]\nusername = "u"\n',
        "endpoint[0]",
        "at most one authentication method may be set, got basic_auth, bearer_token",
    ),
    (
        "auth-sigv4-azuread",
        EP + '[endpoint.sigv4]\nregion = "eu-west-1"\n'
        f'[endpoint.azuread.managed_identity]\nclient_id = "{UUID}"\n',
        "endpoint[0]",
        "got sigv4, azuread",
    ),
    (
        "auth-token-file",
        EP + 'bearer_token_file = "/t"\n[endpoint.authorization]\ncredentials = "c"\n',
        "endpoint[0]",
        "got authorization, bearer_token_file",
    ),
    (
        "basic-password-both",
        EP + '[endpoint.basic_auth]\nusername = "u"\npassword = "p"\npassword_file = "/p"\n',
        "endpoint[0].basic_auth",
        "password and password_file are mutually exclusive",
    ),
    (
        "authorization-credentials-both",
        EP + '[endpoint.authorization]\ncredentials = "c"\ncredentials_file = "/c"\n',
        "endpoint[0].authorization",
        "credentials and credentials_file are mutually exclusive",
    ),
    (
        "authorization-basic",
        EP + '[endpoint.authorization]\ntype = "Basic"\ncredentials = "c"\n',
        "endpoint[0].authorization.type",
        "use the basic_auth block",
    ),
    (
        "oauth2-no-secret",
        EP + '[endpoint.oauth2]\nclient_id = "id"\ntoken_url = "https://t/token"\n',
        "endpoint[0].oauth2",
        "one of client_secret or client_secret_file is required",
    ),
    (
        "oauth2-both-secrets",
        EP + '[endpoint.oauth2]\nclient_id = "id"\ntoken_url = "https://t/token"\n'
        'client_secret = "s"\nclient_secret_file = "/s"\n',
        "endpoint[0].oauth2",
        "client_secret and client_secret_file are mutually exclusive",
    ),
    (
        "oauth2-token-url",
        EP + '[endpoint.oauth2]\nclient_id = "id"\nclient_secret = "s"\n',
        "endpoint[0].oauth2.token_url",
        "is required",
    ),
    (
        "oauth2-client-id",
        EP + '[endpoint.oauth2]\ntoken_url = "https://t/token"\nclient_secret = "s"\n',
        "endpoint[0].oauth2.client_id",
        "is required",
    ),
    (
        "oauth2-token-url-scheme",
        EP + '[endpoint.oauth2]\nclient_id = "i"\nclient_secret = "s"\ntoken_url = "t"\n',
        "endpoint[0].oauth2.token_url",
        "http or https",
    ),
    (
        "oauth2-tls",
        EP + '[endpoint.oauth2]\nclient_id = "i"\nclient_secret = "s"\n'
        'token_url = "https://t/"\n[endpoint.oauth2.tls_config]\nca_pem = "x"\nca_file = "/ca"\n',
        "endpoint[0].oauth2.tls_config",
        "ca_pem and ca_file are mutually exclusive",
    ),
    (
        "oauth2-no-proxy",
        EP + '[endpoint.oauth2]\nclient_id = "i"\nclient_secret = "s"\n'
        'token_url = "https://t/"\nno_proxy = "10.0.0.0/8"\n',
        "endpoint[0].oauth2.no_proxy",
        "requires proxy_url",
    ),
    # --- sigv4 and azuread
    (
        "sigv4-keys",
        EP + '[endpoint.sigv4]\naccess_key = "AKIA"\n',
        "endpoint[0].sigv4",
        "access_key and secret_key must be set together",
    ),
    (
        "azuread-cloud",
        EP + '[endpoint.azuread]\ncloud = "Mars"\n[endpoint.azuread.sdk]\n',
        "endpoint[0].azuread.cloud",
        "AzurePublic, AzureChina, AzureGovernment",
    ),
    (
        "azuread-none",
        EP + '[endpoint.azuread]\ncloud = "AzureChina"\n',
        "endpoint[0].azuread",
        "exactly one of managed_identity, oauth, sdk is required, got none",
    ),
    (
        "azuread-two",
        EP + f'[endpoint.azuread.managed_identity]\nclient_id = "{UUID}"\n[endpoint.azuread.sdk]\n',
        "endpoint[0].azuread",
        "got managed_identity, sdk",
    ),
    (
        "azuread-mi-uuid",
        EP + '[endpoint.azuread.managed_identity]\nclient_id = "not-a-uuid"\n',
        "endpoint[0].azuread.managed_identity.client_id",
        "must be a UUID",
    ),
    (
        "azuread-oauth-uuid",
        EP + '[endpoint.azuread.oauth]\nclient_id = "x"\nclient_secret = "s"\ntenant_id = "t"\n',
        "endpoint[0].azuread.oauth.client_id",
        "must be a UUID",
    ),
    (
        "azuread-oauth-tenant",
        EP + f'[endpoint.azuread.oauth]\nclient_id = "{UUID}"\nclient_secret = "s"\n'
        'tenant_id = "bad tenant!"\n',
        "endpoint[0].azuread.oauth.tenant_id",
        "invalid tenant ID",
    ),
    (
        "azuread-oauth-secret",
        EP + f'[endpoint.azuread.oauth]\nclient_id = "{UUID}"\ntenant_id = "{UUID}"\n',
        "endpoint[0].azuread.oauth.client_secret",
        "is required",
    ),
    (
        "azuread-sdk-tenant",
        EP + '[endpoint.azuread.sdk]\ntenant_id = "a/b"\n',
        "endpoint[0].azuread.sdk.tenant_id",
        "invalid tenant ID",
    ),
    # --- TLS
    (
        "tls-ca",
        EP + '[endpoint.tls_config]\nca_pem = "x"\nca_file = "/ca"\n',
        "endpoint[0].tls_config",
        "ca_pem and ca_file are mutually exclusive",
    ),
    (
        "tls-cert-both",
        EP + '[endpoint.tls_config]\ncert_pem = "x"\ncert_file = "/c"\nkey_file = "/k"\n',
        "endpoint[0].tls_config",
        "cert_pem and cert_file are mutually exclusive",
    ),
    (
        "tls-key-both",
        EP + '[endpoint.tls_config]\ncert_file = "/c"\nkey_pem = "k"\nkey_file = "/k"\n',
        "endpoint[0].tls_config",
        "key_pem and key_file are mutually exclusive",
    ),
    (
        "tls-cert-no-key",
        EP + '[endpoint.tls_config]\ncert_file = "/c"\n',
        "endpoint[0].tls_config",
        "needs a key",
    ),
    (
        "tls-key-no-cert",
        EP + '[endpoint.tls_config]\nkey_pem = "k"\n',
        "endpoint[0].tls_config",
        "needs a certificate",
    ),
    (
        "tls-min-version",
        EP + '[endpoint.tls_config]\nmin_version = "TLS1.2"\n',
        "endpoint[0].tls_config.min_version",
        "TLS10, TLS11, TLS12, TLS13",
    ),
    # --- proxy
    (
        "no-proxy-alone",
        EP + 'no_proxy = "localhost"\n',
        "endpoint[0].no_proxy",
        "requires proxy_url",
    ),
    (
        "proxy-env-and-url",
        EP + 'proxy_from_environment = true\nproxy_url = "http://p:3128"\n',
        "endpoint[0].proxy_url",
        "must not be set with proxy_from_environment",
    ),
    (
        "proxy-env-and-no-proxy",
        EP + 'proxy_from_environment = true\nno_proxy = "localhost"\n',
        "endpoint[0].no_proxy",
        "must not be set with proxy_from_environment",
    ),
    (
        "proxy-connect-header",
        EP + 'proxy_connect_header = { "X-Proxy" = ["v"] }\n',
        "endpoint[0].proxy_connect_header",
        "requires proxy_url or proxy_from_environment",
    ),
    (
        "proxy-url-scheme",
        EP + 'proxy_url = "ftp://p"\n',
        "endpoint[0].proxy_url",
        "http://, https:// or socks5://",
    ),
    # --- queue_config and metadata_config
    (
        "min-gt-max-shards",
        EP + "[endpoint.queue_config]\nmin_shards = 3\nmax_shards = 2\n",
        "endpoint[0].queue_config.max_shards",
        "must be >= min_shards (3), got 2",
    ),
    (
        "max-shards-zero",
        EP + "[endpoint.queue_config]\nmax_shards = 0\n",
        "endpoint[0].queue_config.max_shards",
        "must be > 0, got 0",
    ),
    (
        "min-shards-zero",
        EP + "[endpoint.queue_config]\nmin_shards = 0\n",
        "endpoint[0].queue_config.min_shards",
        "must be > 0, got 0",
    ),
    (
        "max-samples-zero",
        EP + "[endpoint.queue_config]\nmax_samples_per_send = -5\n",
        "endpoint[0].queue_config.max_samples_per_send",
        "must be > 0, got -5",
    ),
    (
        "capacity-zero",
        EP + "[endpoint.queue_config]\ncapacity = 0\n",
        "endpoint[0].queue_config.capacity",
        "must be > 0, got 0",
    ),
    (
        "backoff-order",
        EP + '[endpoint.queue_config]\nmin_backoff = "10s"\nmax_backoff = "1s"\n',
        "endpoint[0].queue_config.max_backoff",
        "must be >= min_backoff (10s), got 1s",
    ),
    (
        "min-backoff-zero",
        EP + '[endpoint.queue_config]\nmin_backoff = "0s"\n',
        "endpoint[0].queue_config.min_backoff",
        "must be greater than 0s",
    ),
    (
        "deadline-zero",
        EP + '[endpoint.queue_config]\nbatch_send_deadline = "0s"\n',
        "endpoint[0].queue_config.batch_send_deadline",
        "must be greater than 0s",
    ),
    (
        "metadata-interval",
        EP + '[endpoint.metadata_config]\nsend_interval = "0s"\n',
        "endpoint[0].metadata_config.send_interval",
        "must be greater than 0s",
    ),
    (
        "metadata-max",
        EP + "[endpoint.metadata_config]\nmax_samples_per_send = 0\n",
        "endpoint[0].metadata_config.max_samples_per_send",
        "must be > 0",
    ),
    # --- write_relabel_config
    (
        "relabel-action",
        EP + '[[endpoint.write_relabel_config]]\naction = "Replace"\ntarget_label = "a"\n',
        "endpoint[0].write_relabel_config[0].action",
        "unknown action 'Replace'",
    ),
    (
        "relabel-lookahead",
        EP + '[[endpoint.write_relabel_config]]\nregex = "a(?=b)"\naction = "drop"\n',
        "endpoint[0].write_relabel_config[0].regex",
        "invalid RE2 regular expression",
    ),
    (
        "relabel-any-byte",
        EP + '[[endpoint.write_relabel_config]]\nregex = "a\\\\Cb"\naction = "keep"\n',
        "endpoint[0].write_relabel_config[0].regex",
        "\\C is not supported",
    ),
    (
        "relabel-target-newline",
        EP + '[[endpoint.write_relabel_config]]\ntarget_label = "foo\\n"\nreplacement = "x"\n',
        "endpoint[0].write_relabel_config[0].target_label",
        "not a valid label name",
    ),
    (
        "relabel-backreference",
        EP + '[[endpoint.write_relabel_config]]\nregex = "(a)\\\\1"\naction = "keep"\n',
        "endpoint[0].write_relabel_config[0].regex",
        "invalid escape sequence",
    ),
    (
        "relabel-repeat",
        EP + '[[endpoint.write_relabel_config]]\nregex = "a{1001}"\naction = "keep"\n',
        "endpoint[0].write_relabel_config[0].regex",
        "invalid repetition size",
    ),
    (
        "relabel-hashmod-modulus",
        EP + '[[endpoint.write_relabel_config]]\naction = "hashmod"\ntarget_label = "b"\n',
        "endpoint[0].write_relabel_config[0].modulus",
        "non-zero modulus",
    ),
    (
        "relabel-modulus-negative",
        EP + '[[endpoint.write_relabel_config]]\naction = "hashmod"\ntarget_label = "b"\n'
        "modulus = -4\n",
        "endpoint[0].write_relabel_config[0].modulus",
        "must be >= 0",
    ),
    (
        "relabel-target-required",
        EP + '[[endpoint.write_relabel_config]]\naction = "replace"\nsource_labels = ["a"]\n',
        "endpoint[0].write_relabel_config[0].target_label",
        "the replace action requires target_label",
    ),
    (
        "relabel-target-invalid",
        EP + '[[endpoint.write_relabel_config]]\ntarget_label = "1bad"\n',
        "endpoint[0].write_relabel_config[0].target_label",
        "not a valid label name",
    ),
    (
        "relabel-target-template",
        EP + '[[endpoint.write_relabel_config]]\ntarget_label = "x-$1"\n',
        "endpoint[0].write_relabel_config[0].target_label",
        "not a valid label name",
    ),
    (
        "relabel-lowercase-target",
        EP + '[[endpoint.write_relabel_config]]\naction = "lowercase"\ntarget_label = "$1"\n',
        "endpoint[0].write_relabel_config[0].target_label",
        "not a valid label name",
    ),
    (
        "relabel-uppercase-replacement",
        EP + '[[endpoint.write_relabel_config]]\naction = "uppercase"\ntarget_label = "a"\n'
        'replacement = "x"\n',
        "endpoint[0].write_relabel_config[0].replacement",
        "cannot be set for the uppercase action",
    ),
    (
        "relabel-labelmap-replacement",
        EP + '[[endpoint.write_relabel_config]]\naction = "labelmap"\nregex = "m_(.+)"\n'
        'replacement = "bad-$1"\n',
        "endpoint[0].write_relabel_config[0].replacement",
        "not a valid label name template",
    ),
    (
        "relabel-labeldrop-extra",
        EP + '[[endpoint.write_relabel_config]]\naction = "labeldrop"\nregex = "x"\n'
        'source_labels = ["a"]\n',
        "endpoint[0].write_relabel_config[0]",
        "the labeldrop action takes only regex; remove source_labels",
    ),
    (
        "relabel-labelkeep-extra",
        EP + '[[endpoint.write_relabel_config]]\naction = "labelkeep"\nregex = "x"\n'
        'separator = ","\n',
        "endpoint[0].write_relabel_config[0]",
        "remove separator",
    ),
    (
        "relabel-keepequal-regex",
        EP + '[[endpoint.write_relabel_config]]\naction = "keepequal"\ntarget_label = "a"\n'
        'source_labels = ["b"]\nregex = "x"\n',
        "endpoint[0].write_relabel_config[0]",
        "takes only source_labels and target_label; remove regex",
    ),
    (
        "relabel-dropequal-target",
        EP + '[[endpoint.write_relabel_config]]\naction = "dropequal"\nsource_labels = ["b"]\n',
        "endpoint[0].write_relabel_config[0].target_label",
        "the dropequal action requires target_label",
    ),
    (
        "relabel-source-label",
        EP + '[[endpoint.write_relabel_config]]\naction = "keep"\nsource_labels = ["a-b"]\n',
        "endpoint[0].write_relabel_config[0].source_labels[0]",
        "not a valid label name",
    ),
    # --- endpoint names
    (
        "duplicate-name",
        '[[endpoint]]\nname = "x"\nurl = "http://a/w"\n[[endpoint]]\nname = "x"\nurl = "http://b/w"\n',
        "endpoint[1].name",
        "duplicate endpoint name 'x' (endpoint[0])",
    ),
    (
        "duplicate-unnamed",
        EP + EP,
        "endpoint[1]",
        "same settings as endpoint[0]",
    ),
    (
        "duplicate-unnamed-identity",
        EP + "[endpoint.queue_config]\nmax_shards = 3\n" + EP,
        "endpoint[1]",
        "same settings as endpoint[0] for identity (url and protobuf_message)",
    ),
    # --- wal
    (
        "keepalive-order",
        '[wal]\nmin_keepalive_time = "1h"\nmax_keepalive_time = "1h"\n',
        "wal.max_keepalive_time",
        "must be greater than min_keepalive_time (1h), got 1h",
    ),
    (
        "truncate-zero",
        '[wal]\ntruncate_frequency = "0s"\n',
        "wal.truncate_frequency",
        "must be greater than 0s",
    ),
    ("segment-multiple", "[wal]\nsegment_size = 100000\n", "wal.segment_size", "multiple of 32768"),
    ("segment-small", "[wal]\nsegment_size = 32768\n", "wal.segment_size", "between 65536"),
    ("segment-large", "[wal]\nsegment_size = 536870912\n", "wal.segment_size", "268435456"),
    ("compression-type", '[wal]\ncompression = "snappy"\n', "wal.compression", "true or false"),
    # --- rwconsole tables
    ("storage-path", '[storage]\npath = ""\n', "storage.path", "must not be empty"),
    ("http-address", '[http]\nlisten_address = "localhost"\n', "http.listen_address", ":port"),
    ("http-port", '[http]\nlisten_address = "127.0.0.1:70000"\n', "http.listen_address", "port"),
    (
        "http-port-digit",
        '[http]\nlisten_address = "127.0.0.1:\u00b2"\n',
        "http.listen_address",
        "port",
    ),
    (
        "http-ipv6",
        '[http]\nlisten_address = "::1:80"\n',
        "http.listen_address",
        "in brackets",
    ),
    (
        "receiver-address",
        '[receiver]\nlisten_address = "127.0.0.1"\n',
        "receiver.listen_address",
        "expected host:port",
    ),
    (
        "receiver-same-as-http",
        '[receiver]\nlisten_address = "127.0.0.1:12345"\n',
        "receiver.listen_address",
        "must differ from http.listen_address",
    ),
    ("scrape-job", '[[scrape]]\ntargets = ["h:1"]\n', "scrape[0].job_name", "is required"),
    (
        "scrape-duplicate-job",
        '[[scrape]]\njob_name = "a"\ntargets = ["h:1"]\n[[scrape]]\njob_name = "a"\n'
        'targets = ["h:2"]\n',
        "scrape[1].job_name",
        "duplicate job_name 'a'",
    ),
    ("scrape-no-targets", '[[scrape]]\njob_name = "a"\n', "scrape[0].targets", "at least one"),
    (
        "scrape-target-url",
        '[[scrape]]\njob_name = "a"\ntargets = ["http://h:9100/metrics"]\n',
        "scrape[0].targets[0]",
        "expected host:port",
    ),
    (
        "scrape-target-host",
        '[[scrape]]\njob_name = "a"\ntargets = [":9100"]\n',
        "scrape[0].targets[0]",
        "missing host",
    ),
    (
        "scrape-timeout",
        '[[scrape]]\njob_name = "a"\ntargets = ["h:1"]\nscrape_interval = "5s"\n'
        'scrape_timeout = "10s"\n',
        "scrape[0].scrape_timeout",
        "must be <= scrape_interval (5s), got 10s",
    ),
    (
        "scrape-path",
        '[[scrape]]\njob_name = "a"\ntargets = ["h:1"]\nmetrics_path = "metrics"\n',
        "scrape[0].metrics_path",
        "must start with '/'",
    ),
    (
        "scrape-scheme",
        '[[scrape]]\njob_name = "a"\ntargets = ["h:1"]\nscheme = "ftp"\n',
        "scrape[0].scheme",
        "'http' or 'https'",
    ),
    (
        "scrape-auth",
        '[[scrape]]\njob_name = "a"\ntargets = ["h:1"]\nbearer_token = "t"\n'
        'bearer_token_file = "/t"\n',
        "scrape[0]",
        "at most one authentication method",
    ),
    (
        "scrape-label",
        '[[scrape]]\njob_name = "a"\ntargets = ["h:1"]\nlabels = { "a.b" = "x" }\n',
        'scrape[0].labels."a.b"',
        "not a valid label name",
    ),
    (
        "scrape-tls",
        '[[scrape]]\njob_name = "a"\ntargets = ["h:1"]\n[scrape.tls_config]\ncert_file = "/c"\n',
        "scrape[0].tls_config",
        "needs a key",
    ),
    ("synthetic-series", "[synthetic]\nseries = 0\n", "synthetic.series", "must be >= 1"),
    (
        "synthetic-metrics",
        "[synthetic]\nseries = 5\nmetrics = 6\n",
        "synthetic.metrics",
        "must be <= series (5), got 6",
    ),
    ("synthetic-churn", "[synthetic]\nchurn = 1.5\n", "synthetic.churn", "between 0 and 1"),
    (
        "synthetic-interval",
        '[synthetic]\ninterval = "0s"\n',
        "synthetic.interval",
        "must be greater than 0s",
    ),
    (
        "synthetic-label",
        '[synthetic]\nlabels = { __x = "y" }\n',
        "synthetic.labels.__x",
        "reserved",
    ),
    (
        "external-label-name",
        'external_labels = { "1abc" = "x" }\n',
        "external_labels.1abc",
        "not a valid label name",
    ),
    (
        "external-label-empty",
        'external_labels = { region = "" }\n',
        "external_labels.region",
        "must not be empty",
    ),
    # --- types
    (
        "type-int",
        EP + '[endpoint.queue_config]\nmax_shards = "20"\n',
        "endpoint[0].queue_config.max_shards",
        'expected an integer, got "20"',
    ),
    (
        "type-int-float",
        EP + "[endpoint.queue_config]\ncapacity = 1.5\n",
        "endpoint[0].queue_config.capacity",
        "expected an integer, got 1.5",
    ),
    (
        "type-bool",
        EP + 'send_exemplars = "yes"\n',
        "endpoint[0].send_exemplars",
        'expected true or false, got "yes"',
    ),
    (
        "type-duration",
        EP + "remote_timeout = 12\n",
        "endpoint[0].remote_timeout",
        'expected a duration like "30s", got 12',
    ),
    (
        "type-string",
        "[[endpoint]]\nurl = 5\n",
        "endpoint[0].url",
        "expected a string, got 5",
    ),
    (
        "type-secret",
        EP + '[endpoint.basic_auth]\npassword = { value = "x" }\n',
        "endpoint[0].basic_auth.password",
        'expected a secret: a string, { env = "VARIABLE" } or { file = "path" }',
    ),
    (
        "type-list",
        '[[scrape]]\njob_name = "a"\ntargets = "h:1"\n',
        "scrape[0].targets",
        'expected an array, got "h:1"',
    ),
    (
        "type-array-of-tables",
        '[endpoint]\nurl = "http://a/w"\n',
        "endpoint",
        "expected an array of tables [[endpoint]], got a single table",
    ),
    (
        "type-table",
        EP + 'queue_config = "fast"\n',
        "endpoint[0].queue_config",
        "expected a table",
    ),
    (
        "alloy-only",
        EP + "round_robin_dns = true\n",
        "endpoint[0].round_robin_dns",
        "Alloy setting that rwconsole does not support",
    ),
    (
        "secret-env-missing",
        EP + '[endpoint.basic_auth]\nusername = "u"\n'
        'password = { env = "RWCONSOLE_TEST_UNSET_VARIABLE_91" }\n',
        "endpoint[0].basic_auth.password",
        "environment variable RWCONSOLE_TEST_UNSET_VARIABLE_91 is not set",
    ),
    (
        "secret-file-missing",
        EP + 'bearer_token = { file = "no-such-token-file" }\n',
        "endpoint[0].bearer_token",
        "cannot read secret file",
    ),
]


@pytest.mark.parametrize(
    ("text", "key_path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key_path: str, fragment: str
) -> None:
    code, err = _check(tmp_path, capsys, text)
    assert code == 1, err
    expected_prefix = f"{tmp_path / 'bad.toml'}: {key_path}: "
    lines = [line for line in err.splitlines() if expected_prefix in line]
    assert lines, f"no problem reported at {key_path!r}:\n{err}"
    assert any(fragment in line for line in lines), err


def test_case_ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
