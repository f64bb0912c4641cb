"""infra/ (the azd project), checked offline: the Bicep CLI cannot be installed here.

- every setting the code reads is set by infra/ or documented as optional (docs/OPERATIONS.md, "App
  settings"), and infra/ sets nothing the code and the Functions host do not read;
- every resource type, api-version and module version is one of infra/verified.json (each checked
  against azure-rest-api-specs or the Azure Verified Modules registry, infra/README.md);
- a structural lint: balanced brackets, every param used, no keys, no listKeys(), modules that exist;
- the azd wiring: azure.yaml's service and hooks, main.parameters.json against main.bicep's params,
  and infra/policy.json is a policy exomi loads.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from shared import settings as settings_module
from shared.policy import load_policy
from tests.support.exomi import ROOT

INFRA = ROOT / "infra"
BICEP = sorted(INFRA.rglob("*.bicep"))
VERIFIED = json.loads((INFRA / "verified.json").read_text("utf-8"))
# Settings the Functions host (not exomi's code) reads: identity-based storage and Application Insights.
HOST_SETTINGS = {
    "AzureWebJobsStorage__credential",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
SETTING_READ = re.compile(r"""(?:\bget|environ\.get|getenv|environ\[)\(?\s*["']([A-Za-z][A-Za-z0-9_]*)["']""")


def _code(path: Path) -> str:
    return path.read_text("utf-8")


def settings_the_code_reads() -> set[str]:
    """Names read from the environment in function_app.py and shared/ (settings.py reads them through
    its local get()), plus the engine's timing settings, which settings.py names in a table."""
    names: set[str] = set()
    for path in [ROOT / "function_app.py", *sorted((ROOT / "shared").rglob("*.py"))]:
        names |= set(SETTING_READ.findall(_code(path)))
    names |= set(settings_module._ENGINE_SETTINGS.values())
    # get() also reads dictionaries: keep what looks like a setting name (upper case, or Functions' own).
    return {n for n in names if n.isupper() or n.startswith("AzureWebJobs") or n.startswith("AZURE_")}


def _block(text: str, start: str) -> str:
    """The {...} that follows ``start`` (brace matching; the templates have no braces in strings here)."""
    begin = text.index(start)
    opening = text.index("{", begin)
    depth = 0
    for index in range(opening, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[opening + 1 : index]
    raise AssertionError(f"unbalanced braces after {start!r}")


def settings_infra_sets() -> set[str]:
    app = _code(INFRA / "modules" / "app.bicep")
    names: set[str] = set()
    for var in ("var baseSettings =", "var userAssignedSettings ="):
        names |= set(re.findall(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*:", _block(app, var), re.MULTILINE))
    return names


def settings_documented() -> tuple[set[str], set[str]]:
    """(set by infra, optional) from the table of docs/OPERATIONS.md, "App settings"."""
    text = _code(ROOT / "docs" / "OPERATIONS.md")
    section = text[text.index("\n## App settings\n") :]
    by_infra: set[str] = set()
    optional: set[str] = set()
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        names = set(re.findall(r"`([A-Za-z][A-Za-z0-9_]*)`", cells[0]))
        if cells[1]:
            by_infra |= names
        if cells[2].startswith("yes"):
            optional |= names
    return by_infra, optional


def test_every_setting_the_code_reads_is_set_by_infra_or_documented_as_optional():
    read = settings_the_code_reads()
    infra = settings_infra_sets()
    by_infra, optional = settings_documented()
    assert {"EXOMI_POLICY", "EXOMI_QUEUE_NAME", "AzureWebJobsStorage__accountName", "AZURE_CLIENT_ID"} <= read
    assert sorted(read - infra - optional) == [], "read by the code, neither set by infra/ nor optional"
    assert sorted(infra - read - HOST_SETTINGS) == [], "set by infra/, read by nobody"
    assert by_infra == infra, "the table's 'set by infra/' column is what app.bicep sets"
    assert sorted((by_infra | optional) - read - HOST_SETTINGS) == [], "documented, read by nobody"


def test_identity_based_storage_and_entra_telemetry_settings():
    app = _code(INFRA / "modules" / "app.bicep")
    assert "AzureWebJobsStorage__credential: 'managedidentity'" in app
    assert "allowSharedKeyAccess: false" in app and "DisableLocalAuth: true" in app
    assert "Authorization=AAD" in app
    # a user-assigned identity is named by its client id, for storage and for exomi's own tokens
    assert {"AzureWebJobsStorage__clientId", "AZURE_CLIENT_ID"} <= set(
        re.findall(r"^\s*([A-Za-z_]+)\s*:", _block(app, "var userAssignedSettings ="), re.MULTILINE)
    )
    assert "sku: { name: 'FC1', tier: 'FlexConsumption' }" in app
    assert "runtime: { name: 'python', version: '3.11' }" in app


def _uses(pattern: str) -> set[str]:
    found: set[str] = set()
    for path in BICEP:
        found |= set(re.findall(pattern, _code(path)))
    return found


def test_resource_types_and_api_versions_are_verified_ones():
    used = _uses(r"'(Microsoft\.[A-Za-z]+/[A-Za-z/]+@\d{4}-\d{2}-\d{2}(?:-preview)?)'")
    assert used, "the templates declare resources"
    assert sorted(used - set(VERIFIED["resource_types"])) == []
    for type_version, source in VERIFIED["resource_types"].items():
        provider, version = type_version.split("/")[0], type_version.rsplit("@", 1)[1]
        assert f"/{provider}/" in source and f"/{version}/" in source, type_version


def test_module_versions_are_published_azure_verified_modules():
    used = _uses(r"'(br/public:[^']+)'")
    assert used and sorted(used - set(VERIFIED["modules"])) == []
    for module in used:
        assert re.fullmatch(r"br/public:avm/res/[a-z-]+/[a-z-]+:\d+\.\d+\.\d+", module), module


def _strip(text: str) -> str:
    """The template without comments, and its strings reduced to their ${...} expressions: what
    brackets and names are checked on."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    text = re.sub(r"'''.*?'''", "''", text, flags=re.DOTALL)
    text = re.sub(
        r"'(?:\\.|[^'\\\n])*'",
        lambda string: "'" + " ".join(re.findall(r"\$\{([^}]*)\}", string.group())) + "'",
        text,
    )
    return re.sub(r"//[^\n]*", "", text)


@pytest.mark.parametrize("path", BICEP, ids=lambda p: str(p.relative_to(INFRA)))
def test_bicep_structure(path: Path):
    text = _code(path)
    code = _strip(text)
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in code:
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack.pop() == pairs[char], f"unbalanced {char}"
    assert stack == [], "unclosed brackets"
    for name in re.findall(r"^param\s+([A-Za-z][A-Za-z0-9_]*)\b", code, re.MULTILINE):
        assert len(re.findall(rf"\b{name}\b", code)) > 1, f"param {name} is never used"
    for name in re.findall(r"^var\s+([A-Za-z][A-Za-z0-9_]*)\b", code, re.MULTILINE):
        assert len(re.findall(rf"\b{name}\b", code)) > 1, f"var {name} is never used"
    # Identity everywhere: no keys fetched, none written down.
    assert "listKeys(" not in text and "listkeys(" not in text.lower()
    for secret in (
        r"AccountKey=",
        r"SharedAccessSignature",
        r"[?&]sig=",
        r"InstrumentationKey=",
        r"-----BEGIN",
    ):
        assert not re.search(secret, text, re.IGNORECASE), secret
    assert not re.search(r"['\"][A-Za-z0-9+/]{40,}={0,2}['\"]", text), "a long base64 literal (a key?)"
    assert not re.search(r"@secure\(\)", text) or "password" not in text.lower()
    for module in re.findall(r"^module\s+\w+\s+'([^']+)'", text, re.MULTILINE):
        if not module.startswith("br/"):
            assert (path.parent / module).is_file(), module


def test_main_parameters_match_main_bicep():
    main = _strip(_code(INFRA / "main.bicep"))
    declared = dict(re.findall(r"^param\s+(\w+)\s+\w+(\s*=)?", main, re.MULTILINE))
    given = json.loads((INFRA / "main.parameters.json").read_text("utf-8"))["parameters"]
    assert set(given) <= set(declared), "parameters main.bicep does not declare"
    assert {name for name, default in declared.items() if not default} <= set(given), "required, not given"


def azure_yaml_hooks() -> dict[str, dict[str, dict[str, str]]]:
    """azure.yaml's ``hooks:`` as {hook: {platform: {key: value}}} (two-space indents, scalars only)."""
    text = _code(ROOT / "azure.yaml")
    hooks: dict[str, dict[str, dict[str, str]]] = {}
    hook = platform = ""
    for line in text[text.index("\nhooks:\n") + len("\nhooks:\n") :].splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            break  # the next top-level key
        indent, (key, _, value) = len(line) - len(line.lstrip()), line.strip().partition(":")
        if indent == 2:
            hook = key
            hooks[hook] = {}
        elif indent == 4:
            platform = key
            hooks[hook][platform] = {}
        else:
            hooks[hook][platform][key] = value.strip()
    return hooks


def hook_commands(path: Path) -> list[str]:
    """The exomi and azd commands a hook script runs, in order, as words (sh's ``exec``, pwsh's output
    redirections and exit-code checks left out): what must be the same on POSIX and on Windows."""
    commands = []
    for line in _code(path).splitlines():
        words = line.strip().split()
        if not words or words[0].startswith("#"):
            continue
        for part in " ".join(words).split("&&"):
            tokens = [w for w in part.split() if not re.match(r"^[0-9*]?>", w) and w not in (";", "then")]
            while tokens and tokens[0] in ("if", "exec"):  # sh's `if command -v exomi && exomi ...`
                tokens = tokens[1:]
            if tokens and tokens[0] in ("exomi", "azd"):
                commands.append(" ".join(tokens))
    return commands


def test_azure_yaml_deploys_the_function_app_and_runs_bootstrap_after_provisioning():
    text = _code(ROOT / "azure.yaml")
    assert re.search(r"services:\n  api:\n    project: \.\n    language: python\n    host: function\n", text)
    hooks = azure_yaml_hooks()
    assert set(hooks) == {"postprovision", "postdeploy"}
    for hook, platforms in hooks.items():
        # azd's hook schema (schemas/v1.0/azure.yaml.json, "hook"): with both posix and windows, the
        # hook itself has no run/shell; each variant names its shell (sh or pwsh) and script.
        assert set(platforms) == {"posix", "windows"}, hook
        posix, windows = platforms["posix"], platforms["windows"]
        assert (posix["shell"], windows["shell"]) == ("sh", "pwsh"), hook
        assert posix["run"] == f"infra/hooks/{hook}.sh" and windows["run"] == f"infra/hooks/{hook}.ps1"
        assert {k: v for k, v in posix.items() if k not in ("shell", "run")} == {
            k: v for k, v in windows.items() if k not in ("shell", "run")
        }, hook
        for variant in (posix, windows):
            path = ROOT / variant["run"]
            assert path.is_file() and os.access(path, os.X_OK), path
        sh, pwsh = hook_commands(ROOT / posix["run"]), hook_commands(ROOT / windows["run"])
        assert sh and sh == pwsh, (hook, sh, pwsh)
    assert hook_commands(INFRA / "hooks" / "postprovision.sh") == [
        "exomi bootstrap --help",
        "exomi bootstrap",
    ]
    assert hook_commands(INFRA / "hooks" / "postdeploy.sh") == [
        "azd env set EXOMI_EVENTS_ENABLED true",
        "azd provision --no-prompt",
    ]
    # The same guard on the setting in both: provision again only the first time.
    for name in ("postdeploy.sh", "postdeploy.ps1"):
        assert "EXOMI_EVENTS_ENABLED" in _code(INFRA / "hooks" / name).split("azd env set")[0], name
    # what the site must carry for azd to find the service
    assert "'azd-service-name': 'api'" in _code(INFRA / "modules" / "app.bicep")


def test_the_policy_file_is_a_policy_exomi_loads():
    policy = load_policy(text=(INFRA / "policy.json").read_text("utf-8"))
    assert policy.allowed_organizations == [] and policy.allowed_scopes == []  # allows nothing until edited


def test_the_event_subscription_has_the_filters_of_operations_md():
    subscription = _code(INFRA / "events" / "subscription.bicep")
    operations = _code(ROOT / "docs" / "OPERATIONS.md")
    for event_type in (
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Resources.ResourceDeleteSuccess",
    ):
        assert f"'{event_type}'" in subscription
    listed = re.search(r"var targetTypes = \[(.*?)\]", subscription, re.DOTALL)
    assert listed
    types = re.findall(r"'(Microsoft\.[A-Za-z]+/[A-Za-z]+)'", listed.group(1))
    for type_ in types:
        assert f"`{type_}/write`" in operations and f"`/providers/{type_}/`" in operations
    documented = set(re.findall(r"`(Microsoft\.[A-Za-z]+/[A-Za-z]+)/write`", operations)) - {
        "Microsoft.Resources/tags"
    }
    assert set(types) == documented
    for needed in (
        "'StringIn'",
        "key: 'data.operationName'",
        "'Microsoft.Resources/tags/write'",
        "'StringContains'",
        "key: 'subject'",
        "'StringNotIn'",
        "key: 'data.authorization.evidence.principalId'",
        "maxDeliveryAttempts: 30",
        "eventTimeToLiveInMinutes: 1440",
        "deadLetterWithResourceIdentity",
        "endpointType: 'AzureFunction'",
        "/functions/on_resource_event",
    ):
        assert needed in subscription or needed in _code(INFRA / "main.bicep"), needed


def test_alert_queries_match_the_log_lines_the_code_writes():
    alerts = _code(INFRA / "modules" / "alerts.bicep")
    service, reconcile = _code(ROOT / "shared" / "service.py"), _code(ROOT / "shared" / "reconcile.py")
    runner = _code(ROOT / "shared" / "engine" / "runner.py")
    assert '"refused %s of %s through %s' in service and 'message startswith "refused "' in alerts
    assert '"drift on %s: %s %s: %s"' in reconcile and 'message startswith "drift on "' in alerts
    assert "more than {asked}" in _code(ROOT / "shared" / "findings.py") and '"more than the"' in alerts
    assert '"healing %s with request %s"' in reconcile and 'startswith "healing "' in alerts
    assert '"request %s step %s failed: %s"' in runner and "failed|ended failed" in alerts
    assert '"policy refuses to heal %s' in reconcile and '"policy refuses to heal "' in alerts
    assert "requests | where success == false" in alerts


def test_without_exomi_bootstrap_the_postprovision_hook_says_what_to_grant_by_hand(tmp_path):
    principal = "6c4b9a2e-1f3d-4e5a-9b8c-7d6e5f4a3b2c"
    completed = subprocess.run(
        ["sh", str(INFRA / "hooks" / "postprovision.sh")],
        env={
            "PATH": "/usr/bin:/bin",
            "EXOMI_PRINCIPAL_ID": principal,
            "AZURE_FUNCTION_APP_NAME": "func-exomi-x",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert principal in completed.stdout and "docs/PERMISSIONS.md" in completed.stdout
    assert "Application.Read.All" in completed.stdout and "allowed_scopes" in completed.stdout
