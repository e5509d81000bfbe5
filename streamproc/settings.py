"""The one frozen settings object, read from environment variables and validated at start-up."""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streamproc import limits_file
from streamproc.core.limits import Limits

INPUT_TOPICS = ("quotes", "positions", "targets", "instruments", "executions")
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_ROOT = Path(__file__).resolve().parents[1]


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message says which variable and how to fix it."""


@dataclass(frozen=True, slots=True)
class Topics:
    """Physical topic names (namespace-prefixed)."""

    quotes: str
    positions: str
    targets: str
    instruments: str
    orders: str
    alerts: str
    deadletter: str
    executions: str

    def logical(self, physical: str) -> str:
        """The wire-contract name (``quotes``) of a physical topic name (called per record: cached)."""
        return _logical_names(self)[physical]


@functools.cache
def _logical_names(topics: Topics) -> dict[str, str]:
    return {getattr(topics, f.name): f.name for f in fields(topics)}


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be a number >= 0")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a number > 0")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 1:
        raise ValueError("must be a fraction in (0, 1]")
    return value


def _below_one(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < 1:
        raise ValueError("must be a fraction in [0, 1)")
    return value


def _pairs(raw: str, what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        try:
            number = float(value) if sep and name.strip() else math.nan
        except ValueError:
            number = math.nan
        if not number >= 0:
            raise ValueError(f"{item!r} is not {what}=<number >= 0>; write e.g. {what}=60,other=120")
        out[name.strip()] = number
    return out


def _per_tier(raw: str) -> dict[str, float]:
    return {k: v for k, v in _pairs(raw, "tier").items() if v > 0}


def _topic_seconds(raw: str) -> dict[str, float]:
    values = _pairs(raw, "topic")
    unknown = sorted(set(values) - set(INPUT_TOPICS))
    if unknown:
        raise ValueError(f"unknown topic {', '.join(unknown)}: use {', '.join(INPUT_TOPICS)}")
    return {k: v for k, v in values.items() if v > 0}


def _security_protocol(raw: str) -> str:
    value = raw.upper()
    if value not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ValueError("must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    return value


def _sasl_mechanism(raw: str) -> str:
    value = raw.upper()
    if value not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise ValueError("must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    return value


def _file(raw: str) -> str:
    if raw and not Path(raw).is_file():
        raise ValueError(f"{raw} is not a readable file")
    return raw


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port between 1 and 65535")
    return value


def _bootstrap(raw: str) -> str:
    hosts = [h.strip() for h in raw.split(",") if h.strip()]
    if not hosts:
        raise ValueError("must list at least one host:port")
    for h in hosts:
        host, sep, port = h.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{h!r} is not host:port")
    return ",".join(hosts)


def _redis_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return raw


def _base_url(raw: str) -> str:
    parts = urlsplit(raw)
    if raw and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ValueError("must be empty or an http:// or https:// URL (where runbooks/ is served)")
    return raw.rstrip("/")


def _namespace(raw: str) -> str:
    if raw and not _NAMESPACE.match(raw):
        raise ValueError("must be empty or 1-64 characters of letters, digits, '_' and '-'")
    return raw


def _group_id(raw: str) -> str:
    if raw and not re.match(r"^[A-Za-z0-9._-]{1,200}$", raw):
        raise ValueError("must be empty or letters, digits, '.', '_' and '-'")
    return raw


def _log_format(raw: str) -> str:
    if raw not in ("auto", "json", "console"):
        raise ValueError("must be auto, json or console")
    return raw


def _schemas_dir(raw: str) -> Path:
    path = Path(raw) if raw else _ROOT / "schemas"
    if not (path / "quotes.json").is_file():
        raise ValueError(f"{path} does not hold the wire schemas (quotes.json, ...)")
    return path


def _limits(raw: str) -> Limits:
    return limits_file.load(Path(raw)) if raw else Limits()


def _writable(path: Path) -> bool:
    """Whether ``path`` (absolute) is a directory this process can write in, or can create."""
    existing = next(p for p in (path, *path.parents) if os.path.exists(p))  # False where not searchable
    return os.path.isdir(existing) and os.access(existing, os.W_OK | os.X_OK)


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/streamproc``, else ``~/.local/state/streamproc`` (beside the local stack's data);
    ``<temp dir>/streamproc-<uid>`` where that cannot be created (a container user without a home)."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    # without a home, "~" stays "~" (relative): the temp dir then
    base = Path(xdg) if os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".local" / "state"
    if base.is_absolute() and _writable(base / "streamproc"):
        return base / "streamproc"
    return Path(tempfile.gettempdir()) / f"streamproc-{os.getuid()}"


def _state_dir(raw: str) -> Path:
    path = Path(os.path.expanduser(raw)) if raw else default_state_dir()
    if not path.is_absolute():
        raise ValueError(f"{raw} is relative: use an absolute path (not the working directory)")
    if "{" in str(path) or "}" in str(path):
        raise ValueError(f"{path} has a brace: Faust formats its data directory's path")
    if not _writable(path):
        raise ValueError(f"{path} is not a directory this user (uid {os.getuid()}) can create or write in")
    return path


# field -> (environment variable, default, parser, help); a test checks docs/configuration.md documents
# each one.
SPEC: dict[str, tuple[str, str, Callable[[str], Any], str]] = {
    "kafka_bootstrap_servers": ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", _bootstrap, "Kafka brokers"),
    "kafka_security_protocol": (
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        _security_protocol,
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    ),
    "kafka_sasl_mechanism": (
        "KAFKA_SASL_MECHANISM",
        "PLAIN",
        _sasl_mechanism,
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL protocol)",
    ),
    "kafka_sasl_username": ("KAFKA_SASL_USERNAME", "", str, "SASL user (from a Secret)"),
    "kafka_sasl_password": ("KAFKA_SASL_PASSWORD", "", str, "SASL password (from a Secret; never logged)"),
    "kafka_ssl_cafile": ("KAFKA_SSL_CAFILE", "", _file, "CA bundle for SSL/SASL_SSL (default: the system's)"),
    "redis_url": ("REDIS_URL", "redis://127.0.0.1:6379/0", _redis_url, "Redis server (`rediss://` for TLS)"),
    "redis_password": (
        "REDIS_PASSWORD",
        "",
        str,
        "Redis password, if not in REDIS_URL (from a Secret; never logged)",
    ),
    "redis_ssl_cafile": ("REDIS_SSL_CAFILE", "", _file, "CA bundle for `rediss://` (default: the system's)"),
    "namespace": ("STREAMPROC_NAMESPACE", "", _namespace, "prefix of topics, group and Redis keys"),
    "group_id": (
        "STREAMPROC_GROUP_ID",
        "",
        _group_id,
        "consumer group (Faust app id); default <namespace>.streamproc, or streamproc",
    ),
    "eval_interval_ms": ("STREAMPROC_EVAL_INTERVAL_MS", "50", _positive_int, "evaluation cadence"),
    "eval_max_defer_ms": (
        "STREAMPROC_EVAL_MAX_DEFER_MS",
        "1000",
        _non_negative_int,
        "while the price feed is more than a batch behind, evaluate at most this often (0: never defer)",
    ),
    "quote_max_age_s": ("STREAMPROC_QUOTE_MAX_AGE_S", "30", _positive_float, "older quotes are stale"),
    "max_clock_skew_s": (
        "STREAMPROC_MAX_CLOCK_SKEW_S",
        "5",
        _positive_float,
        "a quote or position stamped further ahead of the worker's clock is dead-lettered (`clock_skew`); "
        "a quote's age counts from the earlier of its ts and its arrival",
    ),
    "quote_max_age_by_tier": (
        "STREAMPROC_QUOTE_MAX_AGE_BY_TIER",
        "",
        _per_tier,
        "max quote age per tier, e.g. `micro=120,bond=300` (an instrument's `max_quote_age_s` wins)",
    ),
    "outlier_move": (
        "STREAMPROC_OUTLIER_MOVE",
        "0.2",
        _positive_float,
        "a mid moving more than this fraction from the last applied one is held until the next quote",
    ),
    "outlier_move_by_tier": (
        "STREAMPROC_OUTLIER_MOVE_BY_TIER",
        "",
        _per_tier,
        "outlier threshold per tier, e.g. `micro=0.4`",
    ),
    "feed_silent_s": (
        "STREAMPROC_FEED_SILENT_S",
        "quotes=10",
        _topic_seconds,
        "per input topic, seconds without a new record (after it was live) before `feed_silent` fires",
    ),
    "position_gap_timeout_s": (
        "STREAMPROC_POSITION_GAP_TIMEOUT_S",
        "0",
        _non_negative_float,
        "lift a position-gap quarantine after this long; 0: only `streamproc reconcile` lifts it",
    ),
    "storm_share": (
        "STREAMPROC_STORM_SHARE",
        "0.2",
        _fraction,
        "share of a worker's accounts newly breaching within the storm window that holds all orders",
    ),
    "storm_open_share": (
        "STREAMPROC_STORM_OPEN_SHARE",
        "0.5",
        _fraction,
        "the same for an opening wave: accounts breaching as their markets open (they were `closed`) hold "
        "all orders only past this share (overnight moves are larger; intraday breaches use the above)",
    ),
    "opening_delay_s": (
        "STREAMPROC_OPENING_DELAY_S",
        "0",
        _non_negative_float,
        "after an instrument's session opens, its accounts stay `closed` this long (the opening auction's "
        "prices are not traded on); quotes are applied meanwhile",
    ),
    "opening_delay_by_tier": (
        "STREAMPROC_OPENING_DELAY_BY_TIER",
        "",
        _per_tier,
        "opening delay per tier, e.g. `micro=900` (seconds)",
    ),
    "storm_window_s": ("STREAMPROC_STORM_WINDOW_S", "10", _positive_float, "breach storm window"),
    "storm_min_accounts": (
        "STREAMPROC_STORM_MIN_ACCOUNTS",
        "50",
        _positive_int,
        "fewer new breaches than this in the window are never a storm",
    ),
    "deadletter_rate_per_min": (
        "STREAMPROC_DEADLETTER_RATE_PER_MIN",
        "100",
        _positive_int,
        "dead letters per minute above which `deadletter_rate` fires",
    ),
    "deadletter_window_s": (
        "STREAMPROC_DEADLETTER_WINDOW_S",
        "60",
        _positive_float,
        "window over which the dead-letter rate is measured",
    ),
    "band_rel_floor": (
        "STREAMPROC_BAND_REL_FLOOR",
        "0.005",
        _below_one,
        "the narrowest a relative band gets, in weight (0.005: half a point), so tiny targets stay tradable",
    ),
    "band_edge_margin": (
        "STREAMPROC_BAND_EDGE_MARGIN",
        "0.1",
        _below_one,
        "edge mode trades to this fraction of the band inside the edge (0.1: 40 +- 3 buys back to 37.3)",
    ),
    "cash_buffer": (
        "STREAMPROC_CASH_BUFFER",
        "0.0025",
        _below_one,
        "cash a deposit leaves uninvested above the cash target, as a fraction of the account "
        "(targets `cash_buffer` overrides)",
    ),
    "drift_min_move": (
        "STREAMPROC_DRIFT_MIN_MOVE",
        "0.0025",
        _below_one,
        "an evaluated account's drift document is rewritten when a weight moved more than this (0.0025: "
        "a quarter point) since it was written",
    ),
    "drift_refresh_s": (
        "STREAMPROC_DRIFT_REFRESH_S",
        "60",
        _positive_float,
        "... or when it is this old and the account is evaluated again",
    ),
    "order_cooldown_s": (
        "STREAMPROC_ORDER_COOLDOWN_S",
        "300",
        _non_negative_float,
        "default wait before re-issuing an unanswered order (targets `cooldown_s` overrides)",
    ),
    "max_orders_per_s": (
        "STREAMPROC_MAX_ORDERS_PER_S",
        "0",
        _non_negative_float,
        "the order throttle: at most this many orders a second per worker (0: off); orders over it wait "
        "(status `throttled`), in order, never dropped",
    ),
    "max_notional_per_min": (
        "STREAMPROC_MAX_NOTIONAL_PER_MIN",
        "0",
        _non_negative_float,
        "the order throttle: at most this leg notional over any minute per worker (0: off)",
    ),
    "order_max_attempts": (
        "STREAMPROC_ORDER_MAX_ATTEMPTS",
        "3",
        _non_negative_int,
        "unanswered orders in a row before an account waits for `streamproc orders` (0: no cap)",
    ),
    "order_settle_s": (
        "STREAMPROC_ORDER_SETTLE_S",
        "1",
        _non_negative_float,
        "quiet time after a position or targets change before the account is evaluated",
    ),
    "session_timeout_s": (
        "STREAMPROC_SESSION_TIMEOUT_S",
        "30",
        _positive_float,
        "a worker silent this long loses its partitions to the others (failover time after a crash)",
    ),
    "stop_timeout_s": (
        "STREAMPROC_STOP_TIMEOUT_S",
        "15",
        _positive_float,
        "a stop (SIGTERM, Ctrl-C) still running after this long logs where it hung and exits with 75; "
        "keep it under the orchestrator's grace period",
    ),
    "batch_max": ("STREAMPROC_BATCH_MAX", "2000", _positive_int, "max records per consumed batch"),
    "quote_checkpoint_ms": (
        "STREAMPROC_QUOTE_CHECKPOINT_MS",
        "1000",
        _positive_int,
        "how often, under load, the feed state and offsets are written to Redis (at once when idle)",
    ),
    "partitions": ("STREAMPROC_PARTITIONS", "8", _positive_int, "partitions of topics the worker creates"),
    "replication": ("STREAMPROC_REPLICATION", "1", _positive_int, "replication of topics it creates"),
    "web_host": ("STREAMPROC_WEB_HOST", "127.0.0.1", str, "bind address of the worker's web port"),
    "web_port": ("STREAMPROC_WEB_PORT", "6066", _port, "the worker's web port"),
    "log_level": ("STREAMPROC_LOG_LEVEL", "info", str.lower, "debug, info, warning, error"),
    "log_format": ("STREAMPROC_LOG_FORMAT", "auto", _log_format, "json, console, or auto (console on a tty)"),
    "schemas_dir": ("STREAMPROC_SCHEMAS_DIR", "", _schemas_dir, "wire schemas (default: the repo's)"),
    "limits": (
        "STREAMPROC_LIMITS_FILE",
        "",
        _limits,
        "the platform limits (TOML: version, declared tiers, and per default, tier and instrument a "
        "band, max_leg_notional, spread_budget_bps, slippage_bps, eligible; docs/limits.md); default: "
        "the built-in tiers large, bond, dividend, micro, micro at ±2 points, no other limit",
    ),
    "runbook_base_url": (
        "STREAMPROC_RUNBOOK_BASE_URL",
        "",
        _base_url,
        "where the runbooks are served (an https:// URL); each alert then carries `runbook_url` = this + "
        "`/<type>.md` beside the repository path `runbook` (empty: no `runbook_url`)",
    ),
    "state_dir": (
        "STREAMPROC_STATE_DIR",
        "",
        _state_dir,
        "the worker's local files (Faust's `<app id>-data/`; nothing in it needs to survive a restart); "
        "default `$XDG_STATE_HOME/streamproc`, else `~/.local/state/streamproc`, else "
        "`$TMPDIR/streamproc-<uid>` when home is not writable (the image sets `/var/lib/streamproc`)",
    ),
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker is configured with; build it with ``Settings.from_env()``."""

    kafka_bootstrap_servers: str
    kafka_security_protocol: str
    kafka_sasl_mechanism: str
    kafka_sasl_username: str
    kafka_sasl_password: str
    kafka_ssl_cafile: str
    redis_url: str
    redis_password: str
    redis_ssl_cafile: str
    namespace: str
    group_id: str
    eval_interval_ms: int
    eval_max_defer_ms: int
    quote_max_age_s: float
    max_clock_skew_s: float
    quote_max_age_by_tier: dict[str, float]
    outlier_move: float
    outlier_move_by_tier: dict[str, float]
    feed_silent_s: dict[str, float]
    position_gap_timeout_s: float
    storm_share: float
    storm_open_share: float
    opening_delay_s: float
    opening_delay_by_tier: dict[str, float]
    storm_window_s: float
    storm_min_accounts: int
    deadletter_rate_per_min: int
    deadletter_window_s: float
    band_rel_floor: float
    band_edge_margin: float
    cash_buffer: float
    drift_min_move: float
    drift_refresh_s: float
    order_cooldown_s: float
    max_orders_per_s: float
    max_notional_per_min: float
    order_max_attempts: int
    order_settle_s: float
    session_timeout_s: float
    stop_timeout_s: float
    batch_max: int
    quote_checkpoint_ms: int
    partitions: int
    replication: int
    web_host: str
    web_port: int
    log_level: str
    log_format: str
    schemas_dir: Path
    limits: Limits
    runbook_base_url: str
    state_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and validate every setting; a bad value raises SettingsError naming the variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, (var, default, parse, _help) in SPEC.items():
            if name in overrides:
                values[name] = overrides[name]
                continue
            raw = env.get(var, default).strip()
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                problems.append(f"{var}={raw!r}: {exc} (default {default!r})")
        if "log_level" in values and values["log_level"] not in ("debug", "info", "warning", "error"):
            problems.append(
                f"STREAMPROC_LOG_LEVEL={values['log_level']!r}: use debug, info, warning or error"
            )
        protocol = values.get("kafka_security_protocol", "")
        if protocol.startswith("SASL") and not (
            values.get("kafka_sasl_username") and values.get("kafka_sasl_password")
        ):
            problems.append(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        limits = values.get("limits")
        for name, var in (
            ("quote_max_age_by_tier", "STREAMPROC_QUOTE_MAX_AGE_BY_TIER"),
            ("outlier_move_by_tier", "STREAMPROC_OUTLIER_MOVE_BY_TIER"),
            ("opening_delay_by_tier", "STREAMPROC_OPENING_DELAY_BY_TIER"),
        ):
            if limits is None or name not in values:
                continue
            undeclared = [t for t in values[name] if limits.tier_of(t) is None]
            if undeclared:
                problems.append(
                    f"{var} names tiers {undeclared} that are not declared ({', '.join(limits.tiers)}; "
                    f"from {limits.source})"
                )
            values[name] = {limits.tier_of(t) or t: v for t, v in values[name].items()}
        if problems:
            raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems))
        return cls(**values)

    @property
    def app_id(self) -> str:
        """Faust app id, which is also the Kafka consumer group."""
        if self.group_id:
            return self.group_id
        return f"{self.namespace}.streamproc" if self.namespace else "streamproc"

    @property
    def redis_prefix(self) -> str:
        """Prefix of every Redis key."""
        return f"{self.namespace}:sp:" if self.namespace else "sp:"

    @property
    def topics(self) -> Topics:
        """The namespace's topic names."""
        pre = f"{self.namespace}." if self.namespace else ""
        return Topics(**{f.name: pre + f.name for f in fields(Topics)})

    def redacted(self) -> dict[str, str]:
        """Settings for logs, with credentials in URLs masked."""
        out = {f.name: str(getattr(self, f.name)) for f in fields(self)}
        out["limits"] = f"{self.limits.version} ({self.limits.source})"
        parts = urlsplit(self.redis_url)
        if parts.password:
            out["redis_url"] = self.redis_url.replace(f":{parts.password}@", ":***@")
        for secret in ("kafka_sasl_password", "redis_password"):
            if out[secret]:
                out[secret] = "***"
        return out
