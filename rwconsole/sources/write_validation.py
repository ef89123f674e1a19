"""What the remote-write receiver refuses at the door, with which status and reason.

The one place for these rules. Measured against Prometheus 2.42's receiver
(``--web.enable-remote-write-receiver``):

* duplicate label names: 2.42 answers 500 ``label name "a" is not unique:
  invalid sample``; an empty label set: 500 ``empty labelset: invalid
  sample``. A 500 makes the sender retry a request that can never succeed,
  so both are 400 here.
* out-of-order, duplicate-timestamp and too-old samples: 400 in 2.42 (its
  TSDB head judges them). The relay writes into a WAL that forwards, with no
  head to judge against, so it leaves them to the downstream receivers.
* 2.42 stores series with unsorted labels, without ``__name__``, with
  metric or label names outside the classic character set, and drops empty
  label values. Strict receivers (Prometheus 3, Mimir, Thanos) refuse whole
  batches for those later, far from the cause, so the relay refuses them
  now with 400: unsorted labels, empty names and empty values are refused
  by the decoder; the name rules are below.

Each rule has a short ``reason`` label for the receiver's metrics.
"""

from __future__ import annotations

import re

from rwconsole.labels import METRIC_NAME, Labels

REASON_DECODE = "invalid_request"
REASON_MEDIA_TYPE = "unsupported_media_type"
REASON_EMPTY = "empty_labelset"
REASON_NO_NAME = "missing_metric_name"
REASON_METRIC_NAME = "invalid_metric_name"
REASON_LABEL_NAME = "invalid_label_name"
REASON_AUTH = "unauthorized"
REASON_NOT_FOUND = "not_found"
REASON_METHOD = "method_not_allowed"
REASON_STORAGE = "storage_error"

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MAX_KNOWN_NAMES = 100_000


class InvalidSeries(Exception):
    """A series breaks a rule: answered 400 with ``message``; ``reason`` labels the metric."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SeriesValidator:
    """Checks label sets; names seen valid before cost one set lookup each."""

    def __init__(self) -> None:
        self._metric_names: set[str] = set()
        self._label_names: set[str] = set()

    def check(self, labels: Labels, where: str) -> None:
        """Raise ``InvalidSeries`` unless ``labels`` (sorted, unique) may be stored."""
        if not labels:
            raise InvalidSeries(REASON_EMPTY, f"{where}: empty label set")
        name = None
        for label, value in labels:
            if label == METRIC_NAME:
                name = value
            elif label not in self._label_names:
                if not _LABEL_NAME.fullmatch(label):
                    raise InvalidSeries(
                        REASON_LABEL_NAME,
                        f"{where}: invalid label name {label[:100]!r} "
                        "(must match [a-zA-Z_][a-zA-Z0-9_]*)",
                    )
                _remember(self._label_names, label)
        if name is None:
            raise InvalidSeries(
                REASON_NO_NAME, f"{where}: no metric name (__name__) in {_show(labels)}"
            )
        if name not in self._metric_names:
            if not _METRIC_NAME.fullmatch(name):
                raise InvalidSeries(
                    REASON_METRIC_NAME,
                    f"{where}: invalid metric name {name[:100]!r} "
                    "(must match [a-zA-Z_:][a-zA-Z0-9_:]*)",
                )
            _remember(self._metric_names, name)


def _remember(names: set[str], name: str) -> None:
    if len(names) >= _MAX_KNOWN_NAMES:
        names.clear()
    names.add(name)


def _show(labels: Labels) -> str:
    text = "{" + ", ".join(f"{k}={v!r}" for k, v in labels) + "}"
    return text if len(text) <= 200 else text[:199] + "…"
