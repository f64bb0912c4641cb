"""Runbook jobs (``{AA}/jobs/{name}``): start, watch, read output and streams, stop.

A job runs the runbook's *published* content. Its status is derived from timestamps when read: New,
Activating, then Running after ``timings.job_start``, then Completed or Failed after ``timings.job_run``.
When the job starts running, ``emulator.powershell.run_script`` decides what the script does from the
tenant's state at that moment: the account's identities, and the modules its runtime has (5.1: imported
modules over the global ones; 7.x: the runtime environment's packages).

A job with ``runOn`` a Hybrid Runbook Worker group is Queued until one of the group's workers can take it
(automation_hybrid_workers.pick_worker: a worker on a running emulated VM); from then on it runs on that
machine, with the machine's modules and the identity hybrid jobs get (``worker_host``).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emulator.arm.automation_accounts import account_guid
from emulator.arm.automation_common import (
    AA,
    ACCOUNT_TYPE,
    aa_time,
    bad_request,
    check_name,
    child_not_found,
    object_property,
    paged_keeping_query,
    parse_filter,
    require_parent_account,
    route_args,
    text_response,
)
from emulator.arm.automation_hybrid_workers import find_group, pick_worker, worker_host
from emulator.arm.automation_runbooks import find_runbook
from emulator.arm.automation_runtimes import find_runtime, host_modules
from emulator.arm.identity import linked_identities
from emulator.arm.router import ArmContext, ArmRouter, arm_json
from emulator.http import ArmError
from emulator.powershell import ScriptHost, ScriptOutcome, run_script
from emulator.tenant import ArmResource, Tenant
from emulator.throttling import concurrent_jobs_check, job_submission_check

JOB_TYPE = f"{ACCOUNT_TYPE}/jobs"
JSON_TYPE = "Microsoft.Automation/AutomationAccounts/Jobs"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
TERMINAL = ("Completed", "Failed", "Stopped")
_PARAM_BLOCK = re.compile(r"^\s*(?:(?:#[^\n]*|\[CmdletBinding\([^)]*\)\])\s*)*param\s*\(", re.IGNORECASE)


@dataclass
class StreamRecord:
    stream_id: str
    stream_type: str  # Output | Warning | Error
    text: str
    time: float


@dataclass
class JobRun:
    """A job's timeline and, once it has started, what its script did."""

    job_id: str
    runbook: str
    runtime: str
    content: str
    parameters: dict[str, str]
    started_by: str
    created_at: float
    start_at: float
    end_at: float
    stopped_at: float | None = None
    outcome: ScriptOutcome | None = None
    records: list[StreamRecord] = field(default_factory=list)
    run_on: str = ""  # a Hybrid Runbook Worker group; "" for Azure's sandbox
    worker_vm: str | None = None  # the resource id of the hybrid worker machine that took the job

    def status(self, now: float) -> str:
        if self.stopped_at is not None and now >= self.stopped_at:
            return "Stopped"
        if self.run_on and self.worker_vm is None:
            return "Queued"  # no worker of the group has taken it yet
        if now >= self.end_at:
            return "Completed" if self.outcome and self.outcome.succeeded else "Failed"
        if now >= self.start_at:
            return "Running"
        return "Activating" if now >= (self.created_at + self.start_at) / 2 else "New"

    def status_changed_at(self, now: float) -> float:
        return {
            "Stopped": self.stopped_at,
            "Completed": self.end_at,
            "Failed": self.end_at,
            "Running": self.start_at,
            "Activating": (self.created_at + self.start_at) / 2,
        }.get(self.status(now), self.created_at)

    def visible_records(self, now: float) -> list[StreamRecord]:
        cutoff = min(now, self.stopped_at) if self.stopped_at is not None else now
        return [r for r in self.records if r.time <= cutoff]


# --------------------------------------------------------------------------------------------------
# Running the script


def split_parameters(content: str) -> tuple[str, dict[str, str | None]]:
    """The script without its leading ``param(...)`` block, and the declared parameters' defaults."""
    match = _PARAM_BLOCK.match(content)
    if not match:
        return content, {}
    depth, end = 1, match.end()
    while end < len(content) and depth:
        depth += {"(": 1, ")": -1}.get(content[end], 0)
        end += 1
    declared: dict[str, str | None] = {}
    for name, default in re.findall(r"\$(\w+)(?:\s*=\s*([^,\)\r\n]+))?", content[match.end() : end - 1]):
        if name.lower() not in ("true", "false", "null"):  # attribute arguments, not parameters
            declared[name] = default.strip() if default else None
    return content[end:], declared


def _script_with_parameters(run: JobRun) -> str:
    """Binds the job's parameters the way PowerShell does: as variables the script body sees."""
    body, declared = split_parameters(run.content)
    given = {k.lower(): v for k, v in run.parameters.items()}
    assignments = []
    for name, default in declared.items():
        value = given.get(name.lower())
        if value is not None:
            assignments.append(f"${name} = '{value}'")
        elif default is not None:
            assignments.append(f"${name} = {default}")
    return "\n".join([*assignments, body])


def _place(tenant: Tenant, account: ArmResource, run: JobRun, now: float) -> None:
    """A queued hybrid job goes to a worker that can take it; its timeline starts from that moment."""
    group = find_group(tenant, account, run.run_on)
    picked = pick_worker(tenant, group, now) if group is not None else None
    if picked is None:
        return
    run.worker_vm = picked[1].id
    length = run.end_at - run.start_at
    run.start_at = max(run.start_at, now)
    run.end_at = run.start_at + length


def _start(tenant: Tenant, account: ArmResource, run: JobRun) -> None:
    """Runs the script as of the moment the job started and lays its records out over the run time."""
    env = find_runtime(tenant, account, run.runtime)
    vm = tenant.get_resource(run.worker_vm) if run.worker_vm else None
    if run.worker_vm and vm is None:
        run.outcome = ScriptOutcome(  # *guess*: the machine went away between taking the job and running it
            succeeded=False, exception=f"The hybrid worker machine '{run.worker_vm}' is no longer available."
        )
    elif env is None:
        run.outcome = ScriptOutcome(
            succeeded=False,
            exception=f"The runtime environment '{run.runtime}' of this job no longer exists.",
        )
    elif vm is not None:
        run.outcome = run_script(
            tenant,
            _script_with_parameters(run),
            worker_host(tenant, account, vm, env.version),
            now=run.start_at,
        )
    else:
        identity = account.identity
        host = ScriptHost(
            description=f"Automation account '{account.name}' ({env.label})",
            automation_account_guid=account_guid(account),
            system_principal_id=identity.system_principal_id if identity else None,
            system_client_id=identity.system_client_id if identity else None,
            user_assigned=linked_identities(tenant, account),
            modules=host_modules(tenant, env, run.start_at),
            powershell=env.version,
        )
        run.outcome = run_script(tenant, _script_with_parameters(run), host, now=run.start_at)
    outcome = run.outcome
    entries = (
        [("Output", line) for line in outcome.output]
        + [("Warning", line) for line in outcome.warnings]
        + [("Error", line) for line in (outcome.errors or ([outcome.exception] if outcome.exception else []))]
    )
    step = (run.end_at - run.start_at) / (len(entries) + 1)
    for seq, (stream_type, text) in enumerate(entries, start=1):
        at = run.start_at + seq * step
        ticks = int(at * 10_000_000) + 621_355_968_000_000_000
        run.records.append(StreamRecord(f"{run.job_id}_{ticks:020d}_{seq:020d}", stream_type, text, at))


def observe(tenant: Tenant, account: ArmResource, job: ArmResource, now: float) -> JobRun:
    run: JobRun = job.state["run"]
    if run.run_on and run.worker_vm is None and run.stopped_at is None:
        _place(tenant, account, run, now)
    if run.run_on and run.worker_vm is None:
        return run
    started = now >= run.start_at and (run.stopped_at is None or run.stopped_at > run.start_at)
    if started and run.outcome is None:
        _start(tenant, account, run)
    return run


# --------------------------------------------------------------------------------------------------
# JSON


def _provisioning_state(status: str) -> str:
    return {"Failed": "Failed", "Completed": "Succeeded", "Stopped": "Succeeded"}.get(status, "Processing")


def _common_properties(run: JobRun, now: float) -> dict[str, Any]:
    status = run.status(now)
    started = status not in ("New", "Activating", "Queued") and (
        run.stopped_at is None or run.stopped_at > run.start_at
    )
    ended = status in TERMINAL
    return {
        "jobId": run.job_id,
        "runbook": {"name": run.runbook},
        "provisioningState": _provisioning_state(status),
        "status": status,
        "creationTime": aa_time(run.created_at),
        "startTime": aa_time(run.start_at) if started else None,
        "endTime": aa_time(run.status_changed_at(now)) if ended else None,
        "lastModifiedTime": aa_time(run.status_changed_at(now)),
        "jobRuntimeEnvironment": {"runtimeEnvironmentName": run.runtime},
        "runOn": run.run_on,
        "startedBy": run.started_by,
    }


def job_json(job: ArmResource, run: JobRun, now: float) -> dict[str, Any]:
    status = run.status(now)
    return {
        "id": job.id,
        "name": job.name,
        "type": JSON_TYPE,
        "properties": {
            **_common_properties(run, now),
            "statusDetails": "None",
            "exception": run.outcome.exception if status == "Failed" and run.outcome else None,
            "lastStatusModifiedTime": aa_time(run.status_changed_at(now)),
            "parameters": run.parameters,
        },
    }


def job_item_json(job: ArmResource, run: JobRun, now: float) -> dict[str, Any]:
    return {"id": job.id, "name": job.name, "type": JSON_TYPE, "properties": _common_properties(run, now)}


def stream_json(job: ArmResource, record: StreamRecord, *, full: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "jobStreamId": record.stream_id,
        "summary": record.text,
        "time": aa_time(record.time),
        "streamType": record.stream_type,
    }
    if full:
        properties.update(streamText=record.text, value={})
    return {"id": f"{job.id}/streams/{record.stream_id}", "properties": properties}


# --------------------------------------------------------------------------------------------------
# Handlers


def _require_job(ctx: ArmContext) -> tuple[ArmResource, ArmResource, JobRun, float]:
    account = require_parent_account(ctx, "jobs")
    job = ctx.tenant.get_resource(f"{account.id}/jobs/{ctx.params['jobName']}")
    if job is None:
        raise child_not_found(ctx, account, "jobs", ctx.params["jobName"])
    now = time.time()
    return account, job, observe(ctx.tenant, account, job, now), now


def _job_parameters(properties: dict[str, Any]) -> dict[str, str]:
    parameters = properties.get("parameters") or {}
    if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
        raise bad_request("'properties.parameters' must map parameter names to string values.")
    return dict(parameters)


def _running_until(tenant: Tenant, account: ArmResource, now: float) -> list[float]:
    """When each of the account's unfinished jobs (New, Activating, Running) ends. Reads the timelines
    only: observing would run a script earlier than the job's first read does."""
    runs: list[JobRun] = [job.state["run"] for job in tenant.children(f"{account.id}/jobs")]
    return [run.end_at for run in runs if run.status(now) not in TERMINAL]


async def create_job(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "jobs")
    job_submission_check(ctx.runtime.rate_limits, account.id)
    name = ctx.params["jobName"]
    check_name(name, NAME_RE, "job", "Use letters, digits, '-' and '_' (a GUID is usual).")
    if ctx.tenant.get_resource(f"{account.id}/jobs/{name}") is not None:
        raise ArmError(409, "Conflict", f"A job named '{name}' already exists; jobs cannot be updated.")
    body = await ctx.json_object()
    properties = object_property(body, "properties", required=True)
    runbook_name = object_property(properties, "runbook", required=True).get("name")
    if not isinstance(runbook_name, str) or not runbook_name:
        raise bad_request("The 'properties.runbook.name' property is required.")
    parameters = _job_parameters(properties)
    run_on = properties.get("runOn") or ""
    if run_on:
        group = find_group(ctx.tenant, account, str(run_on))
        if group is None:
            raise bad_request(
                f"Hybrid runbook worker group '{run_on}' was not found in this Automation account."
            )
        run_on = group.name
    runbook = find_runbook(ctx, account, runbook_name)
    if runbook is None:
        raise child_not_found(ctx, account, "runbooks", runbook_name)
    if runbook.state["published"] is None:
        raise bad_request(
            f"The runbook '{runbook.name}' is in state '{runbook.properties['state']}'; only published runbooks "
            "can be started. Publish the runbook first."
        )
    timings = ctx.runtime.timings
    now = time.time()
    concurrent_jobs_check(
        ctx.runtime.rate_limits, account.name, _running_until(ctx.tenant, account, now), now
    )
    try:
        job_id = str(uuid.UUID(name))
    except ValueError:
        job_id = str(uuid.uuid4())
    run = JobRun(
        job_id=job_id,
        runbook=runbook.name,
        runtime=runbook.properties["runtimeEnvironment"],
        content=runbook.state["published"],
        parameters=parameters,
        run_on=run_on,
        started_by=ctx.caller.principal.display_name,
        created_at=now,
        start_at=now + timings.job_start,
        end_at=now + timings.job_start + timings.job_run,
    )
    if run_on:
        _place(ctx.tenant, account, run, now)
    job = ArmResource(
        id=f"{account.id}/jobs/{name}",
        type=JOB_TYPE,
        name=name,
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
        state={"run": run},
    )
    ctx.tenant.put_resource(job)
    runbook.properties["jobCount"] += 1
    return arm_json(job_json(job, run, now), 201)  # the SDK accepts only 201 here


async def get_job(ctx: ArmContext) -> web.Response:
    _, job, run, now = _require_job(ctx)
    return arm_json(job_json(job, run, now))


async def get_output(ctx: ArmContext) -> web.Response:
    _, _, run, now = _require_job(ctx)
    lines = [r.text for r in run.visible_records(now) if r.stream_type == "Output"]
    return text_response("\r\n".join(lines))


async def get_runbook_content(ctx: ArmContext) -> web.Response:
    _, _, run, _ = _require_job(ctx)
    return text_response(run.content, "text/powershell")


async def list_streams(ctx: ArmContext) -> web.Response:
    _, job, run, now = _require_job(ctx)
    # "streamType eq 'Any'" is how clients ask for every stream.
    clauses = re.split(r"\s+and\s+", ctx.request.query.get("$filter", ""), flags=re.IGNORECASE)
    wanted = [
        c for c in clauses if not re.fullmatch(r"\s*properties/streamType\s+eq\s+'Any'\s*", c, re.IGNORECASE)
    ]
    predicate = parse_filter(
        " and ".join(wanted), {"streamtype": lambda r: r.stream_type, "time": lambda r: r.time}
    )
    records = [r for r in run.visible_records(now) if predicate(r)]
    return paged_keeping_query(ctx, [stream_json(job, r, full=False) for r in records])


async def get_stream(ctx: ArmContext) -> web.Response:
    _, job, run, now = _require_job(ctx)
    wanted = ctx.params["jobStreamId"].lower()
    record = next((r for r in run.visible_records(now) if r.stream_id.lower() == wanted), None)
    if record is None:
        raise ArmError(404, "NotFound", f"The job stream '{ctx.params['jobStreamId']}' was not found.")
    return arm_json(stream_json(job, record, full=True))


async def stop_job(ctx: ArmContext) -> web.Response:
    _, job, run, now = _require_job(ctx)
    status = run.status(now)
    if status in TERMINAL:
        raise bad_request(f"The job '{job.name}' cannot be stopped because it is {status}.")
    run.stopped_at = now
    ctx.event_resource_id = job.id
    return web.Response(status=200)


async def list_jobs(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "jobs")
    now = time.time()
    jobs = [
        (job, observe(ctx.tenant, account, job, now)) for job in ctx.tenant.children(f"{account.id}/jobs")
    ]
    predicate = parse_filter(
        ctx.request.query.get("$filter"),
        {
            "runbook/name": lambda pair: pair[1].runbook,
            "status": lambda pair: pair[1].status(now),
            "provisioningstate": lambda pair: _provisioning_state(pair[1].status(now)),
            "creationtime": lambda pair: pair[1].created_at,
            "lastmodifiedtime": lambda pair: pair[1].status_changed_at(now),
        },
    )
    selected = sorted((pair for pair in jobs if predicate(pair)), key=lambda pair: -pair[1].created_at)
    return paged_keeping_query(ctx, [job_item_json(job, run, now) for job, run in selected])


def register(router: ArmRouter) -> None:
    collection = f"{AA}/jobs"
    item = collection + "/{jobName}"
    args = route_args("automationAccounts/jobs")
    action = "Microsoft.Automation/automationAccounts/jobs"
    router.add("PUT", item, create_job, action=f"{action}/write", **args)
    router.add("GET", item, get_job, action=f"{action}/read", **args)
    router.add("GET", collection, list_jobs, action=f"{action}/read", **args)
    router.add("GET", item + "/output", get_output, action=f"{action}/output/read", **args)
    router.add(
        "GET", item + "/runbookContent", get_runbook_content, action=f"{action}/runbookContent/action", **args
    )
    router.add("GET", item + "/streams", list_streams, action=f"{action}/streams/read", **args)
    router.add("GET", item + "/streams/{jobStreamId}", get_stream, action=f"{action}/streams/read", **args)
    router.add("POST", item + "/stop", stop_job, action=f"{action}/stop/action", **args)
