"""App settings: read once from the environment and, when present, local.settings.json.

The same code runs against Azure, a sovereign cloud or the local emulator; only these values differ.
Precedence: an environment variable wins over the "Values" of local.settings.json (which only exists
on a developer machine; it is never deployed). Invalid values raise `ConfigurationError` naming the
setting. Secrets (the storage connection string) are kept as `SecretStr` so they never show up in
logs or reprs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import BaseModel, ConfigDict, SecretStr

from shared.errors import ConfigurationError, InputError
from shared.ids import validate_guid

LOCAL_SETTINGS_FILE = "local.settings.json"
_TABLE_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,51}$")  # + "idempotency" stays within 63 characters
_QUEUE_NAME_RE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ACCOUNT_NAME_RE = re.compile(r"^[a-z0-9]{3,24}$")


class Cloud(StrEnum):
    AZURE = "AzureCloud"
    US_GOVERNMENT = "AzureUSGovernment"
    CHINA = "AzureChinaCloud"


class ExchangeEnvironment(StrEnum):
    """Which Exchange Online (and Microsoft Graph) the tenant has: Connect-ExchangeOnline's
    -ExchangeEnvironmentName. Commercial and GCC tenants use O365Default."""

    DEFAULT = "O365Default"
    GCC_HIGH = "O365USGovGCCHigh"
    DOD = "O365USGovDoD"
    CHINA = "O365China"


@dataclass(frozen=True)
class CloudProfile:
    arm_endpoint: str
    arm_scope: str
    storage_suffix: str
    exchange_environments: tuple[ExchangeEnvironment, ...]  # the first is the default


CLOUDS: dict[Cloud, CloudProfile] = {
    Cloud.AZURE: CloudProfile(
        arm_endpoint="https://management.azure.com",
        arm_scope="https://management.azure.com/.default",
        storage_suffix="core.windows.net",
        exchange_environments=(ExchangeEnvironment.DEFAULT,),
    ),
    Cloud.US_GOVERNMENT: CloudProfile(
        arm_endpoint="https://management.usgovcloudapi.net",
        arm_scope="https://management.core.usgovcloudapi.net/.default",
        storage_suffix="core.usgovcloudapi.net",
        exchange_environments=(ExchangeEnvironment.GCC_HIGH, ExchangeEnvironment.DOD),
    ),
    Cloud.CHINA: CloudProfile(
        arm_endpoint="https://management.chinacloudapi.cn",
        arm_scope="https://management.chinacloudapi.cn/.default",
        storage_suffix="core.chinacloudapi.cn",
        exchange_environments=(ExchangeEnvironment.CHINA,),
    ),
}
# Microsoft Graph per Microsoft 365 environment (learn.microsoft.com/graph/deployments): endpoint with
# the API version path, and the scope of its tokens. DoD has a Graph of its own.
GRAPH: dict[ExchangeEnvironment, tuple[str, str]] = {
    ExchangeEnvironment.DEFAULT: ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default"),
    ExchangeEnvironment.GCC_HIGH: ("https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/.default"),
    ExchangeEnvironment.DOD: (
        "https://dod-graph.microsoft.us/v1.0",
        "https://dod-graph.microsoft.us/.default",
    ),
    ExchangeEnvironment.CHINA: (
        "https://microsoftgraph.chinacloudapi.cn/v1.0",
        "https://microsoftgraph.chinacloudapi.cn/.default",
    ),
}


class StorageSettings(BaseModel):
    """Where the state tables and the work queue live: a connection string, or service URIs + identity."""

    model_config = ConfigDict(frozen=True)

    connection_string: SecretStr | None = None
    table_service_uri: str | None = None
    queue_service_uri: str | None = None
    client_id: str | None = None  # the user-assigned identity for identity-based access, if any


class AppInsightsSettings(BaseModel):
    """Where traces and metrics go (shared/telemetry.py): APPLICATIONINSIGHTS_CONNECTION_STRING, and
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING for a resource that takes only Entra tokens."""

    model_config = ConfigDict(frozen=True)

    connection_string: SecretStr
    entra: bool = False  # Authorization=AAD: the exporter authenticates with the app's managed identity
    client_id: str | None = None  # ClientId=<guid>: a user-assigned identity (else the system-assigned one)


class EngineTimings(BaseModel):
    """How the engine paces its waiting (seconds). Azure's own delays are minutes; a local emulator's
    are fractions of a second, so these are settings rather than constants."""

    model_config = ConfigDict(frozen=True)

    def with_learned(self, learned: Mapping[str, float]) -> EngineTimings:
        """These timings, with an ``expected_*`` that is 0 ("not known") taken from ``learned`` (what
        earlier waits took in this tenant, shared/state/durations.py)."""
        update = {
            name: float(seconds)
            for name, seconds in learned.items()
            if name.startswith("expected_") and getattr(self, name, None) == 0.0 and seconds > 0
        }
        return self.model_copy(update=update) if update else self

    poll: float = 15.0  # first "check again" delay for imports, jobs and replication (doubles each time)
    max_poll: float = 300.0  # the longest "check again" delay
    replication_window: float = 1800.0  # how long a fresh principal may stay invisible before failing
    # How long verification may fail for authorization after the first refusal: a managed identity's
    # token is cached about 24 h and cannot be refreshed early, so one taken too early can take that long.
    propagation_window: float = 86400.0
    # The longest wait between two verification attempts while grants propagate (each is a job or a
    # Run Command): the back-off ladder doubles from poll up to this.
    verify_max_poll: float = 3600.0
    advance_budget: float = 60.0  # how long one engine pass may work before it yields
    # Waits whose length is roughly known (imports, jobs, Run Command): looked at no more often than
    # min_poll, and at most wait_precision of the time waited so far after the expected end (so a 3-minute
    # import is seen done within 9 s of its end). expected_*: 0 means "not known", look from the start.
    min_poll: float = 2.0
    wait_precision: float = 0.05
    expected_import: float = 0.0
    expected_job: float = 0.0
    expected_run_command: float = 0.0
    # How long a new Automation job takes to start its script (queued -> running). The connect test is
    # started that much before the grants are expected to have propagated, so that its script connects
    # when they have; a Run Command's script is taken to connect at its end (expected_run_command).
    expected_job_start: float = 0.0
    # Grants reach an identity's Exchange token only after a while: verification starts this long after
    # the latest grant (a failure for authorization after that still waits, up to propagation_window).
    propagation: float = 30.0
    # A step due again within this long is waited for inside the pass (which keeps what it loaded and
    # its lease); a longer wait ends the pass and the request is queued again for its time.
    hold: float = 15.0
    # How long a pass holds a running request without renewing (it renews every half of it while it
    # works): a pass whose worker died is taken for dead after this, and the resume pass queues it again.
    lease: float = 30.0
    # A request made from tags waits this long before it starts, so that a burst of tag writes ends in
    # one request for the final tags (a newer event replaces a request that has not started yet).
    tag_settle: float = 10.0
    resume_grace: float = (
        300.0  # reconciliation re-queues a waiting request this long past its "check again at"
    )
    queued_grace: float = 30.0  # ... and a queued request this old (its work item was lost)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    cloud: Cloud
    exchange_environment: ExchangeEnvironment  # EXOMI_EXCHANGE_ENVIRONMENT, default: the cloud's first
    arm_endpoint: str
    arm_scope: str
    graph_endpoint: str
    graph_scope: str
    ca_bundle: Path | None  # an extra CA certificate file to trust (the local emulator's)
    storage: StorageSettings | None  # None: no storage configured (commands that need it say so)
    table_prefix: str
    queue_name: str
    client_id: str | None  # AZURE_CLIENT_ID: exomi's own user-assigned identity, if it uses one
    # EXOMI_PRINCIPAL_ID: the object id of exomi's own identity (events it caused are ignored); when
    # not set, it is read from the oid claim of exomi's own ARM token.
    principal_id: str | None = None
    policy_json: str | None  # EXOMI_POLICY
    policy_file: Path | None  # EXOMI_POLICY_FILE
    # EXOMI_TRUST_APP_SERVICE_AUTH: App Service Authentication (EasyAuth) is in front of the app, so the
    # X-MS-CLIENT-PRINCIPAL-* headers come from Azure (it strips client-supplied ones). Without
    # EasyAuth anyone could send them, so the HTTP API ignores them unless this is true.
    trust_app_service_auth: bool = False
    # EXOMI_CALLBACK_KEY: the key (Fernet) exomi keeps callback URLs encrypted with while their request
    # runs (a URL may carry a signature, like a Logic Apps callback's sig=). Without it, no callbacks.
    callback_key: SecretStr | None = None
    engine: EngineTimings = EngineTimings()  # EXOMI_POLL_SECONDS, EXOMI_MAX_POLL_SECONDS, ...
    app_insights: AppInsightsSettings | None = None  # None: no telemetry is exported
    # EXOMI_TENANT_FACTS_TTL_SECONDS: how long tenant-wide facts (the Exchange Online service principal
    # and its app roles, the verified domains) are kept after one read (shared/azure/tenant_facts.py).
    tenant_facts_ttl: float = 300.0
    # HTTPS_PROXY (or https_proxy), read once at start-up: every HTTP session goes through it. The
    # sessions themselves never look at the environment (or ~/.netrc) again, per request.
    https_proxy: str | None = None
    # NO_PROXY (or no_proxy), read with it: hosts (comma-separated) reached without the proxy.
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, local_settings: Path | None = None) -> Settings:
        """Settings from `environ` (default os.environ) over local.settings.json (default: in the cwd)."""
        values = _read_local_settings(local_settings or Path.cwd() / LOCAL_SETTINGS_FILE)
        values.update(os.environ if environ is None else environ)
        return _build(values)


def _read_local_settings(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigurationError(str(path), f"cannot read it as JSON: {error}") from None
    values = document.get("Values", {}) if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise ConfigurationError(str(path), '"Values" must be a JSON object of setting names to strings')
    for name, value in values.items():
        if not isinstance(value, str):
            raise ConfigurationError(
                name, f"in {path} the value must be a string, got {type(value).__name__}"
            )
    return dict(values)


def _build(values: Mapping[str, str]) -> Settings:
    def get(name: str) -> str | None:
        value = values.get(name)
        return (value.strip() or None) if value is not None else None

    cloud_name = get("EXOMI_CLOUD") or Cloud.AZURE.value
    cloud = next((c for c in Cloud if c.value.lower() == cloud_name.lower()), None)
    if cloud is None:
        raise ConfigurationError("EXOMI_CLOUD", f"must be one of {', '.join(Cloud)}, got {cloud_name!r}")
    profile = CLOUDS[cloud]
    exchange_environment = _exchange_environment(get("EXOMI_EXCHANGE_ENVIRONMENT"), cloud, profile)
    graph_endpoint, graph_scope = GRAPH[exchange_environment]
    ca_bundle = get("EXOMI_CA_BUNDLE")
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise ConfigurationError("EXOMI_CA_BUNDLE", f"{ca_bundle!r} is not a readable file")
    table_prefix = get("EXOMI_TABLE_PREFIX") or "exomi"
    if not _TABLE_PREFIX_RE.fullmatch(table_prefix):
        raise ConfigurationError(
            "EXOMI_TABLE_PREFIX", "must be 1-52 letters and digits starting with a letter (Table name rules)"
        )
    queue_name = get("EXOMI_QUEUE_NAME") or "exomi-work"
    if not _QUEUE_NAME_RE.fullmatch(queue_name):
        raise ConfigurationError(
            "EXOMI_QUEUE_NAME", "must be 3-63 lowercase letters, digits and single hyphens (Queue name rules)"
        )
    policy_file = get("EXOMI_POLICY_FILE")
    return Settings(
        cloud=cloud,
        exchange_environment=exchange_environment,
        arm_endpoint=_endpoint(get("EXOMI_ARM_ENDPOINT"), "EXOMI_ARM_ENDPOINT") or profile.arm_endpoint,
        arm_scope=_scope(get("EXOMI_ARM_SCOPE"), "EXOMI_ARM_SCOPE") or profile.arm_scope,
        graph_endpoint=_endpoint(get("EXOMI_GRAPH_ENDPOINT"), "EXOMI_GRAPH_ENDPOINT", path="/v1.0")
        or graph_endpoint,
        graph_scope=_scope(get("EXOMI_GRAPH_SCOPE"), "EXOMI_GRAPH_SCOPE") or graph_scope,
        ca_bundle=Path(ca_bundle) if ca_bundle else None,
        storage=_storage(get, profile),
        table_prefix=table_prefix,
        queue_name=queue_name,
        client_id=_guid(get("AZURE_CLIENT_ID"), "AZURE_CLIENT_ID"),
        principal_id=_guid(get("EXOMI_PRINCIPAL_ID"), "EXOMI_PRINCIPAL_ID"),
        policy_json=get("EXOMI_POLICY"),
        policy_file=Path(policy_file) if policy_file else None,
        trust_app_service_auth=_flag(get("EXOMI_TRUST_APP_SERVICE_AUTH"), "EXOMI_TRUST_APP_SERVICE_AUTH"),
        callback_key=_fernet_key(get("EXOMI_CALLBACK_KEY")),
        engine=_engine_timings(get),
        tenant_facts_ttl=_seconds(
            get("EXOMI_TENANT_FACTS_TTL_SECONDS"), "EXOMI_TENANT_FACTS_TTL_SECONDS", 300.0
        ),
        https_proxy=_proxy(get("HTTPS_PROXY") or get("https_proxy")),
        no_proxy=tuple(
            h.strip().lower() for h in (get("NO_PROXY") or get("no_proxy") or "").split(",") if h.strip()
        ),
        app_insights=_app_insights(get),
    )


def _app_insights(get: Callable[[str], str | None]) -> AppInsightsSettings | None:
    connection = get("APPLICATIONINSIGHTS_CONNECTION_STRING")
    if connection is None:
        return None
    pairs = dict(part.strip().partition("=")[::2] for part in connection.split(";") if part.strip())
    keys = {key.strip().lower(): value.strip() for key, value in pairs.items()}
    try:
        validate_guid(keys.get("instrumentationkey"), "InstrumentationKey")
    except InputError:
        raise ConfigurationError(
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "must be an Application Insights connection string (InstrumentationKey=<guid>;IngestionEndpoint=...), "
            "as the resource's Overview page shows it",
        ) from None
    if (get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY") or "").lower() == "true":
        return None  # the Functions Python worker configures the exporter itself: a second one would double
    name = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
    authentication = get(name)
    if authentication is None:
        return AppInsightsSettings(connection_string=SecretStr(connection))
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in authentication.split(";"))):
        key, _, value = part.partition("=")
        fields[key.strip().lower()] = value.strip()
    if fields.get("authorization", "").lower() != "aad" or set(fields) - {"authorization", "clientid"}:
        raise ConfigurationError(
            name,
            f"must be 'Authorization=AAD' or 'Authorization=AAD;ClientId=<client id>', got {authentication!r}",
        )
    client_id = fields.get("clientid")
    return AppInsightsSettings(
        connection_string=SecretStr(connection),
        entra=True,
        client_id=_guid(client_id, name) if client_id else None,
    )


def _seconds(value: str | None, name: str, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(name, f"must be a number of seconds, got {value!r}") from None
    if number < 0:
        raise ConfigurationError(name, f"must be 0 or more, got {value!r}")
    return number


def _proxy(value: str | None) -> str | None:
    """An http(s) proxy URL (it may carry user:password, kept as it is)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            "HTTPS_PROXY", f"must be an http:// or https:// proxy URL, got {parts.scheme!r}"
        )
    return value


def _fernet_key(value: str | None) -> SecretStr | None:
    if value is None:
        return None
    try:
        Fernet(value.encode())
    except ValueError:
        raise ConfigurationError(
            "EXOMI_CALLBACK_KEY",
            'must be a Fernet key: 32 bytes, URL-safe base64 (python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())")',
        ) from None
    return SecretStr(value)


_ENGINE_SETTINGS = {
    "poll": "EXOMI_POLL_SECONDS",
    "max_poll": "EXOMI_MAX_POLL_SECONDS",
    "replication_window": "EXOMI_REPLICATION_WINDOW_SECONDS",
    "propagation_window": "EXOMI_PROPAGATION_WINDOW_SECONDS",
    "verify_max_poll": "EXOMI_VERIFY_MAX_POLL_SECONDS",
    "advance_budget": "EXOMI_ADVANCE_BUDGET_SECONDS",
    "min_poll": "EXOMI_MIN_POLL_SECONDS",
    "wait_precision": "EXOMI_WAIT_PRECISION",
    "expected_import": "EXOMI_EXPECTED_IMPORT_SECONDS",
    "expected_job": "EXOMI_EXPECTED_JOB_SECONDS",
    "expected_run_command": "EXOMI_EXPECTED_RUN_COMMAND_SECONDS",
    "expected_job_start": "EXOMI_EXPECTED_JOB_START_SECONDS",
    "propagation": "EXOMI_PROPAGATION_SECONDS",
    "hold": "EXOMI_HOLD_SECONDS",
    "tag_settle": "EXOMI_TAG_SETTLE_SECONDS",
    "resume_grace": "EXOMI_RESUME_GRACE_SECONDS",
    "lease": "EXOMI_LEASE_SECONDS",
    "queued_grace": "EXOMI_QUEUED_GRACE_SECONDS",
}


def _engine_timings(get: Callable[[str], str | None]) -> EngineTimings:
    values: dict[str, float] = {}
    for field, name in _ENGINE_SETTINGS.items():
        raw = get(name)
        if raw is None:
            continue
        try:
            number = float(raw)
        except ValueError:
            raise ConfigurationError(name, f"must be a number of seconds, got {raw!r}") from None
        if number <= 0:
            raise ConfigurationError(name, f"must be greater than 0, got {raw!r}")
        values[field] = number
    return EngineTimings(**values)


def _endpoint(value: str | None, name: str, *, path: str = "") -> str | None:
    """An https base URL without query or fragment; `path` is the path it must have (if any)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ConfigurationError(
            name, f"must be an https:// base URL without query or fragment, got {value!r}"
        )
    if parts.path.rstrip("/") != path:
        wanted = f"the path {path}" if path else "no path"
        raise ConfigurationError(name, f"must have {wanted}, got {value!r}")
    return value.rstrip("/")


def _scope(value: str | None, name: str) -> str | None:
    if value is not None and not (value.startswith("https://") and value.endswith("/.default")):
        raise ConfigurationError(name, f"must be a token scope like https://host/.default, got {value!r}")
    return value


def _flag(value: str | None, name: str) -> bool:
    """A boolean app setting: true or false (any case); unset means false."""
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise ConfigurationError(name, f"must be true or false, got {value!r}")
    return value.lower() == "true"


def _guid(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return validate_guid(value, name)
    except InputError as error:
        raise ConfigurationError(name, error.reason) from None


def _exchange_environment(value: str | None, cloud: Cloud, profile: CloudProfile) -> ExchangeEnvironment:
    if value is None:
        return profile.exchange_environments[0]
    known = ", ".join(e.value for e in profile.exchange_environments)
    match = next((e for e in profile.exchange_environments if e.value.lower() == value.lower()), None)
    if match is None:
        raise ConfigurationError(
            "EXOMI_EXCHANGE_ENVIRONMENT",
            f"{value!r} is not a Microsoft 365 environment of {cloud}: use {known}",
        )
    return match


def _storage(get: Callable[[str], str | None], profile: CloudProfile) -> StorageSettings | None:
    """AzureWebJobsStorage as a connection string, or its identity-based __* fields (Functions conventions)."""
    connection = get("AzureWebJobsStorage")
    client_id = _guid(get("AzureWebJobsStorage__clientId"), "AzureWebJobsStorage__clientId")
    if connection is not None:
        return StorageSettings(connection_string=SecretStr(connection))
    table_uri = _endpoint(get("AzureWebJobsStorage__tableServiceUri"), "AzureWebJobsStorage__tableServiceUri")
    queue_uri = _endpoint(get("AzureWebJobsStorage__queueServiceUri"), "AzureWebJobsStorage__queueServiceUri")
    account = get("AzureWebJobsStorage__accountName")
    if account is not None:
        if not _ACCOUNT_NAME_RE.fullmatch(account):
            raise ConfigurationError(
                "AzureWebJobsStorage__accountName", "must be 3-24 lowercase letters and digits"
            )
        table_uri = table_uri or f"https://{account}.table.{profile.storage_suffix}"
        queue_uri = queue_uri or f"https://{account}.queue.{profile.storage_suffix}"
    if table_uri is None and queue_uri is None:
        return None
    return StorageSettings(table_service_uri=table_uri, queue_service_uri=queue_uri, client_id=client_id)
