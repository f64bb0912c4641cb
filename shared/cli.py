"""``exomi``: run provisioning directly, without the Functions host (one-off jobs from an admin's
workstation, scripts, and the tests). Settings come from the environment and ``local.settings.json``.

    exomi provision --target <ARM id> --organization contoso.onmicrosoft.com [--role ...] [--identity ...]
    exomi plan      (same arguments; changes nothing)
    exomi diagnose  --target <ARM id> [--organization ...]   (read-only, every prerequisite with its fix)
    exomi revoke    --target <ARM id>   |   exomi revoke --principal <object id>   (an orphan)
    exomi adopt     --target <ARM id> --organization ...   (take over access granted by hand)
    exomi status    <request id>
    exomi resume    <request id>      (continue a request, e.g. after a crash)
    exomi list      [--status ...] [--target ...]
    exomi approve   <request id> [--comment ...]   |   exomi deny <request id> [--comment ...]
    exomi cancel    <request id>
    exomi refusals  [--since ...] [--channel ...] [--target ...]
    exomi bootstrap [--plan | --apply] [--principal-id ...] [--event-endpoint URL] [--topic-resource-group ...]
    exomi doctor    [--principal-id ...] [--event-endpoint URL]   (read-only: exomi's own permissions)

The command runs with your own Azure rights (DefaultAzureCredential), so the policy's caller rules,
which say who may ask through tags and the HTTP API, do not apply to it; allowed_channels, the other
policy rules and approvals do. Your name (user@host, or --requested-by / --as) is what is recorded.

Exit codes: 0 done, 1 the request failed (or was denied or cancelled), 2 refused or invalid input,
3 not finished: still running when --wait-seconds ended, or awaiting approval.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import logging
import os
import socket
import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

from shared.errors import ExomiError, InputError
from shared.models import Channel, Operation, Requester, RequestStatus
from shared.service import ExomiApp, ExomiService, PlanReport, StatusReport
from shared.state.records import RequestRecord, StepRecord

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_RUNNING = 0, 1, 2, 3
SYMBOLS = {"done": "✓", "waiting": "…", "failed": "✗", "pending": "·", "skipped": "-"}
VERDICTS = {
    "ok": "OK     ",
    "missing": "MISSING",
    "wrong": "WRONG  ",
    "pending": "PENDING",
    "fallback": "IF NEED",  # bootstrap: only if the operator may not make the write before it
    "n/a": "n/a    ",
    "unknown": "?      ",
    "error": "ERROR  ",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exomi", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what the engine does")
    commands = parser.add_subparsers(dest="command", required=True)

    def request_arguments(sub: argparse.ArgumentParser, *, organization_required: bool) -> None:
        sub.add_argument(
            "--target",
            required=True,
            help="ARM id of the Automation account, VM, VM scale set, Function app or user-assigned identity",
        )
        sub.add_argument(
            "--identity",
            help="'system' (default) or the ARM id of a user-assigned identity attached to the target",
        )
        sub.add_argument(
            "--organization",
            required=organization_required,
            help="the tenant's domain, e.g. contoso.onmicrosoft.com",
        )
        sub.add_argument("--role", help="Entra role (default: the policy's default role)")
        sub.add_argument(
            "--runtime",
            choices=["5.1", "7.2", "7.4"],
            help="runbook runtime for Automation accounts (default 5.1)",
        )
        sub.add_argument("--runtime-environment", help="runtime environment name for 7.x")
        sub.add_argument(
            "--module-version",
            action="append",
            default=[],
            metavar="NAME=VERSION",
            help="module version (policy permitting)",
        )
        sub.add_argument("--runbook-name", help="runbook name (default exomi-connect-exchange)")
        sub.add_argument(
            "--hybrid-worker-group",
            help="the Automation account's Hybrid Runbook Worker group the runbooks run on (default: Azure)",
        )

    for name, help_text in (
        ("provision", "give the target's identity Exchange Online access"),
        ("plan", "show what provision would change"),
    ):
        sub = commands.add_parser(name, help=help_text)
        request_arguments(sub, organization_required=True)
        if name == "provision":
            sub.add_argument("--no-verify", action="store_true", help="skip the verification run")
            sub.add_argument("--external-reference", help="e.g. a ticket id; stored and echoed back")
            sub.add_argument(
                "--expires", help="how long the access lasts: P30D, PT8H, or a UTC date such as 2027-01-31"
            )
            sub.add_argument("--idempotency-key", help="makes retries of this command safe")
            sub.add_argument("--no-wait", action="store_true", help="record the request and return")
            sub.add_argument(
                "--wait-seconds", type=float, default=None, help="give up waiting after this long (exit 3)"
            )
        sub.add_argument("--requested-by", help="who asks (default: user@host)")
    sub = commands.add_parser("diagnose", help="check every prerequisite of a target (read-only)")
    request_arguments(sub, organization_required=False)
    sub.add_argument("--requested-by")
    sub = commands.add_parser(
        "adopt", help="take over access granted by hand (records ownership, changes nothing)"
    )
    request_arguments(sub, organization_required=True)
    sub.add_argument("--requested-by")
    sub = commands.add_parser("revoke", help="remove what exomi granted for a target, or an orphan's grants")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--target", help="ARM id of the target")
    which.add_argument(
        "--principal",
        help="object id of an orphaned managed identity (its resource is gone): removes its Exchange Online rights",
    )
    sub.add_argument("--identity")
    sub.add_argument("--external-reference")
    sub.add_argument("--requested-by")
    sub.add_argument("--no-wait", action="store_true")
    sub.add_argument("--wait-seconds", type=float, default=None)
    for name in ("status", "resume"):
        sub = commands.add_parser(
            name, help="show a request" if name == "status" else "continue a request until it ends"
        )
        sub.add_argument("request_id")
        if name == "resume":
            sub.add_argument("--wait-seconds", type=float, default=None)
    sub = commands.add_parser("list", help="list requests")
    sub.add_argument("--status", choices=[s.value for s in RequestStatus])
    sub.add_argument("--target")
    sub.add_argument("--channel", choices=[c.value for c in Channel])
    sub.add_argument("--external-reference")
    for name, help_text in (
        ("approve", "approve a request that awaits approval (it is queued for the Function app's worker)"),
        ("deny", "deny a request that awaits approval"),
        ("cancel", "cancel a queued, waiting or awaiting-approval request"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("request_id")
        sub.add_argument("--as", dest="acting_as", help="who decides (default: user@host)")
        if name != "cancel":
            sub.add_argument("--comment", help="kept with the decision")
    sub = commands.add_parser("findings", help="every target's latest findings (extra privilege, drift)")
    sub.add_argument("--severity", choices=["high", "medium", "low"], help="only at least this severe")
    sub = commands.add_parser("inventory", help="every principal holding Exchange Online rights (live)")
    sub.add_argument("--csv", action="store_true", help="as CSV")
    sub = commands.add_parser("refusals", help="list refused attempts")
    sub.add_argument("--since", help="ISO 8601 date or time")
    sub.add_argument("--channel", choices=[c.value for c in Channel])
    sub.add_argument("--target")
    for name, help_text in (
        (
            "bootstrap",
            "give exomi's own identity the permissions, roles and Event Grid subscription it needs",
        ),
        ("doctor", "check what exomi's own identity can and cannot do (read-only)"),
    ):
        sub = commands.add_parser(name, help=help_text)
        if name == "bootstrap":
            mode = sub.add_mutually_exclusive_group()
            mode.add_argument("--plan", action="store_true", help="show what would change (the default)")
            mode.add_argument("--apply", action="store_true", help="make the changes")
            sub.add_argument("--topic-resource-group", help="where a missing system topic is created")
            sub.add_argument(
                "--dead-letter-container", help="ARM id of a blob container for undeliverable events"
            )
        sub.add_argument(
            "--roles",
            choices=["builtin", "custom"],
            default="builtin",
            help="the built-in roles docs/PERMISSIONS.md names, or one custom role with only exomi's actions",
        )
        sub.add_argument("--principal-id", help="object id of exomi's identity (default: EXOMI_PRINCIPAL_ID)")
        sub.add_argument(
            "--event-endpoint", help="URL of exomi's Event Grid trigger (on_resource_event) with its key"
        )
        sub.add_argument("--event-subscription-name", default="exomi-tags")
    return parser


def _request_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"target": args.target}
    for field in (
        "identity",
        "organization",
        "role",
        "runtime",
        "runtime_environment",
        "runbook_name",
        "hybrid_worker_group",
        "external_reference",
        "expires",
    ):
        value = getattr(args, field, None)
        if value is not None:
            body[field] = value
    if getattr(args, "module_version", None):
        versions = {}
        for item in args.module_version:
            name, sep, version = item.partition("=")
            if not sep:
                raise InputError("module_versions", f"{item!r} is not NAME=VERSION")
            versions[name] = version
        body["module_versions"] = versions
    if getattr(args, "no_verify", False):
        body["verify"] = False
    return body


class Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.seen: dict[str, tuple[str, str | None]] = {}

    def out(self, text: str) -> None:
        if not self.as_json:
            print(text, flush=True)

    def progress(self, record: RequestRecord, steps: list[StepRecord]) -> None:
        for step in steps:
            key = (step.status.value, step.message)
            if self.seen.get(step.name) != key:
                self.seen[step.name] = key
                self.out(f"  {SYMBOLS.get(step.status.value, '?')} {step.name:<12} {step.message or ''}")

    def request(self, record: RequestRecord, steps: list[StepRecord] | None = None) -> dict[str, Any]:
        data = record.model_dump(mode="json", exclude={"etag"})
        data["request"].pop("callback_url", None)
        if steps is not None:
            data["steps"] = [s.model_dump(mode="json", exclude={"etag", "observed"}) for s in steps]
        return data

    def plan(self, report: PlanReport) -> None:
        if self.as_json:
            print(
                json.dumps(
                    {
                        "target": report.target,
                        "refused": report.refused,
                        "approval_required": report.approval,
                        "findings": [f.model_dump(mode="json") for f in report.findings],
                        "steps": [s.__dict__ for s in report.steps],
                    },
                    indent=2,
                )
            )
            return
        self.out(f"target: {report.target}")
        if report.refused:
            self.out(f"refused by policy rule '{report.refused.get('rule')}': {report.refused['message']}")
        if report.approval:
            self.out(f"an approver must approve it first: {'; '.join(report.approval)}")
        for finding in report.findings:
            self.out(f"  [{finding.severity.upper():<7}] {finding.detail}")
            self.out(f"{'':>12}fix: {finding.fix}")
        for step in report.steps:
            self.out(f"  [{VERDICTS.get(step.verdict, step.verdict)}] {step.name:<12} {step.detail}")
            if step.action and step.verdict in ("missing", "wrong"):
                self.out(f"{'':>25}would: {step.action}")
            if step.fix and step.verdict not in ("ok", "n/a"):
                self.out(f"{'':>25}fix: {step.fix}")


def _show_request(
    service: ExomiService,
    printer: Printer,
    record: RequestRecord,
    what: str,
    *,
    kept: list[str] | None = None,
    rolled_back: list[str] | None = None,
    message: bool = False,
) -> int:
    if printer.as_json:
        data = printer.request(record)
        if kept is not None:
            data["kept"] = kept
            data["rolled_back"] = rolled_back or []
        print(json.dumps(data, indent=2))
    else:
        printer.out(f"request {record.id} {what}: now {record.status.value}")
        if message and record.message:
            printer.out(f"  {record.message}")
        for change in rolled_back or []:
            printer.out(f"  rolled back: {change}")
        for change in kept or []:
            printer.out(f"  kept (revoke the target to remove it): {change}")
    return EXIT_OK


def _connect_command(status: StatusReport) -> str | None:
    """The line the target's own scripts connect with, once a provision request has succeeded."""
    request = status.request
    succeeded = request.status is RequestStatus.SUCCEEDED and request.operation is Operation.PROVISION
    return status.connect_command if succeeded else None


def _function_app(status: StatusReport) -> dict[str, str] | None:
    """A Function app's lines (granted, not verified), once its provision request has succeeded."""
    request = status.request
    succeeded = request.status is RequestStatus.SUCCEEDED and request.operation is Operation.PROVISION
    return status.function_app.to_dict() if succeeded and status.function_app else None


def _print_function_app(printer: Printer, status: StatusReport) -> None:
    if (setup := _function_app(status)) is None:
        return
    printer.out(f"  {setup['outcome']}: {setup['note']}")
    printer.out(f"  requirements.psd1: {setup['requirements_psd1']}")
    printer.out(f"  profile.ps1 or the function: {setup['connect_command']}")
    printer.out(f"  {setup['flex_consumption']}")


def _default_requester() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 - no user name is not worth failing for
        return "cli"


async def _finish(
    service: ExomiService,
    printer: Printer,
    record: RequestRecord,
    args: argparse.Namespace,
    *,
    take_over: bool = False,
) -> int:
    if getattr(args, "no_wait", False):
        if not await service.try_enqueue(record):  # the Function app's queue worker takes it from here
            printer.out(
                "  the work queue did not answer: the Function app's resume pass queues it within a minute"
            )
    else:
        record = await service.run_to_end(
            record.id,
            on_progress=printer.progress,
            give_up_after=getattr(args, "wait_seconds", None),
            take_over=take_over,
        )
    report = await service.status(record.id)
    if printer.as_json:
        data = printer.request(report.request, report.steps)
        if (function_app := _function_app(report)) is not None:
            data["function_app"] = function_app
        print(json.dumps(data, indent=2))
    else:
        state = report.request.status.value
        printer.out(f"request {record.id}: {state}")
        _print_function_app(printer, report)
        if report.request.message:
            printer.out(f"  {report.request.message}")
        if report.request.error and report.request.error.get("fix"):
            printer.out(f"  fix: {report.request.error['fix']}")
        expires_at = report.request.decision.expires_at if report.request.decision else None
        if expires_at is not None and report.request.status is RequestStatus.SUCCEEDED:
            printer.out(
                f"  the access ends at {expires_at.isoformat(timespec='seconds')} (exomi revokes it then)"
            )
        approval = report.request.approval
        if report.request.status is RequestStatus.AWAITING_APPROVAL and approval is not None:
            printer.out(
                f"  awaiting approval until {approval.deadline.isoformat(timespec='seconds')} by one of: "
                f"{', '.join(approval.approvers)} (exomi approve {record.id})"
            )
    status = report.request.status
    if status in (RequestStatus.SUCCEEDED, RequestStatus.REVOKED):
        return EXIT_OK
    if status is RequestStatus.AWAITING_APPROVAL:
        return EXIT_RUNNING
    if status.active:
        return EXIT_RUNNING if not getattr(args, "no_wait", False) else EXIT_OK
    return EXIT_FAILED


def _checks(printer: Printer, items: list[Any]) -> None:
    for item in items:
        verdict = "DONE   " if item.done else VERDICTS.get(item.verdict, item.verdict.upper()[:7].ljust(7))
        printer.out(f"  [{verdict}] {item.area:<9} {item.name}: {item.detail}")
        if item.action and not item.done and item.verdict not in ("ok", "skipped"):
            printer.out(f"{'':>22}would: {item.action}")
        if item.fix and not item.done and item.verdict not in ("ok",):
            printer.out(f"{'':>22}fix: {item.fix}")


async def _operator_command(args: argparse.Namespace, printer: Printer) -> int:
    """bootstrap and doctor: exomi's own identity, with the operator's rights (no state store needed)."""
    from shared import doctor
    from shared.bootstrap import Bootstrap, Options
    from shared.policy import load_policy
    from shared.settings import Settings

    settings = Settings.load()
    principal_id = args.principal_id or settings.principal_id
    if not principal_id:
        raise InputError(
            "principal_id", "name exomi's identity: --principal-id <object id> or EXOMI_PRINCIPAL_ID"
        )
    options = Options(
        principal_id=principal_id,
        event_endpoint=args.event_endpoint,
        topic_resource_group=getattr(args, "topic_resource_group", None),
        event_subscription_name=args.event_subscription_name,
        dead_letter_container=getattr(args, "dead_letter_container", None),
        roles=args.roles,
    )
    if args.command == "doctor":
        report = await doctor.run(settings, options)
        if printer.as_json:
            print(json.dumps(report.as_dict(), indent=2))
        else:
            printer.out(f"exomi's identity {principal_id}:")
            _checks(printer, report.items)
            printer.out("all OK" if report.ok else "something is missing: run the fixes above")
        return EXIT_OK if report.ok else EXIT_FAILED
    policy = load_policy(settings.policy_json, settings.policy_file)
    clients = doctor.clients_for(settings)
    try:
        bootstrap = Bootstrap(clients, policy, options, settings.graph_endpoint)
        items = await bootstrap.inspect()
        if args.apply:
            await bootstrap.apply(items)
    finally:
        await clients.close()
    changes = [i for i in items if i.write is not None and i.verdict not in ("ok", "skipped")]
    if printer.as_json:
        print(
            json.dumps(
                {
                    "principal_id": principal_id,
                    "applied": bool(args.apply),
                    "changes": len(changes),
                    "items": [i.as_dict() for i in items],
                },
                indent=2,
            )
        )
    else:
        _checks(printer, items)
        if not changes:
            printer.out("nothing to change: exomi's identity has what it needs")
        elif args.apply:
            printer.out(f"{len(changes)} change(s) made")
        else:
            printer.out(f"{len(changes)} change(s) to make: run exomi bootstrap --apply")
    unresolved = [i for i in items if i.verdict in ("missing", "wrong") and i.write is None]
    return EXIT_FAILED if unresolved else EXIT_OK


async def _run(args: argparse.Namespace, printer: Printer) -> int:
    if args.command in ("bootstrap", "doctor"):
        return await _operator_command(args, printer)
    name = getattr(args, "requested_by", None) or getattr(args, "acting_as", None) or _default_requester()
    requester = Requester.operator(name)
    async with await ExomiApp.open() as app:
        service = ExomiService(app)
        if args.command == "revoke" and args.principal:
            record = await service.revoke_principal(args.principal, requester=requester)
            return _show_request(service, printer, record, "done", message=True)
        if args.command == "adopt":
            record = await service.adopt(_request_body(args), requester=requester)
            return _show_request(service, printer, record, "done", message=True)
        if args.command in ("provision", "revoke"):
            body = _request_body(args)
            submit = service.submit_provision if args.command == "provision" else service.submit_revoke
            if getattr(args, "no_wait", False):
                service.prepare_to_enqueue()  # before the request is recorded: it waits for the queue from then on
            submission = await submit(
                body,
                requester=requester,
                channel=Channel.CLI,
                idempotency_key=getattr(args, "idempotency_key", None),
            )
            printer.out(
                f"request {submission.request.id} {'accepted' if submission.created else 'already recorded'}: {args.command} {submission.request.target}"
            )
            return await _finish(service, printer, submission.request, args)
        if args.command == "plan":
            printer.plan(await service.plan(_request_body(args), requester=requester, channel=Channel.CLI))
            return EXIT_OK
        if args.command == "diagnose":
            report = await service.diagnose(_request_body(args), requester=requester, channel=Channel.CLI)
            printer.plan(report)
            problems = [s for s in report.steps if s.verdict in ("missing", "wrong", "error")]
            return EXIT_OK if not problems and not report.findings else EXIT_FAILED
        if args.command == "status":
            status = await service.status(args.request_id)
            if printer.as_json:
                data = printer.request(status.request, status.steps)
                data["audit"] = [a.model_dump(mode="json", exclude={"etag"}) for a in status.audit]
                data["connect_command"] = _connect_command(status)
                data["function_app"] = _function_app(status)
                print(json.dumps(data, indent=2))
            else:
                printer.out(
                    f"request {status.request.id}: {status.request.status.value} ({status.request.operation.value} {status.request.target})"
                )
                printer.progress(status.request, status.steps)
                if status.request.message:
                    printer.out(f"  {status.request.message}")
                if status.target is not None and status.target.expires_at is not None:
                    printer.out(
                        f"  the target's access ends at {status.target.expires_at.isoformat(timespec='seconds')}"
                    )
                if (connect := _connect_command(status)) is not None:
                    printer.out(f"  connect with: {connect}")
                _print_function_app(printer, status)
            return EXIT_OK
        if args.command in ("approve", "deny"):
            record = await service.decide(
                args.request_id, requester, approve=args.command == "approve", comment=args.comment
            )
            return _show_request(
                service, printer, record, f"{args.command}d" if args.command == "approve" else "denied"
            )
        if args.command == "cancel":
            cancellation = await service.cancel(args.request_id, requester, Channel.CLI)
            _show_request(
                service,
                printer,
                cancellation.request,
                "cancelled",
                kept=cancellation.kept,
                rolled_back=cancellation.rolled_back,
            )
            return EXIT_OK
        if args.command == "findings":
            from shared.api.documents import finding_list  # the API's document shape, only needed here

            listing = finding_list(await service.findings())
            order = ["high", "medium", "low"]
            rows = [
                f
                for f in listing.value
                if args.severity is None or order.index(f.severity) <= order.index(args.severity)
            ]
            rows.sort(key=lambda f: (order.index(f.severity), f.target.lower()))
            if printer.as_json:
                print(json.dumps([f.model_dump(mode="json") for f in rows], indent=2))
            for finding in rows:
                printer.out(
                    f"[{finding.severity.upper():<6}] {finding.target}\n         {finding.detail}\n         fix: {finding.fix}"
                )
            return EXIT_FAILED if rows else EXIT_OK
        if args.command == "inventory":
            holders = await service.inventory()
            if args.csv:
                from shared.inventory import to_csv

                print(to_csv(holders), end="")
            elif printer.as_json:
                print(json.dumps([h.model_dump(mode="json") for h in holders], indent=2))
            for holder in holders if not args.csv else []:
                flag = " OVER-PRIVILEGED" if holder.over_privileged else ""
                printer.out(
                    f"{holder.status.value:<9}{flag} {holder.display_name or holder.principal_id} ({holder.principal_id})"
                )
                printer.out(
                    f"          app roles: {', '.join(holder.exchange_app_roles) or '-'}; Entra roles: {', '.join(holder.entra_roles) or '-'}"
                )
                printer.out(f"          {holder.resource_id or 'no Azure resource'}: {holder.detail}")
            return EXIT_OK
        if args.command == "refusals":
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00")) if args.since else None
            if since is not None and since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            filters = {
                k: v for k, v in (("since", since), ("channel", args.channel), ("target", args.target)) if v
            }
            refusals = []
            token = None
            while True:
                page = await service.list_refusals(**filters, page_size=200, continuation_token=token)
                refusals += page.items
                token = page.continuation_token
                if token is None:
                    break
            if printer.as_json:
                print(json.dumps([r.model_dump(mode="json") for r in refusals], indent=2))
            for refusal in refusals:
                printer.out(
                    f"{refusal.at.isoformat(timespec='seconds')}  {refusal.channel.value:<9} {refusal.operation:<9} "
                    f"{refusal.requested_by}  rule {refusal.rule}: {refusal.reason}"
                )
            return EXIT_OK
        if args.command == "resume":
            record = (await service.status(args.request_id)).request
            return await _finish(service, printer, record, args, take_over=True)
        if args.command == "list":
            filters = {
                k: v
                for k, v in (
                    ("status", args.status),
                    ("target", args.target),
                    ("channel", args.channel),
                    ("external_reference", args.external_reference),
                )
                if v
            }
            listed = await service.list_requests(**filters, page_size=200)
            if printer.as_json:
                print(json.dumps([printer.request(r) for r in listed.items], indent=2))
            for record in listed.items:
                printer.out(
                    f"{record.id}  {record.status.value:<9} {record.operation.value:<9} {record.channel.value:<9} {record.target}"
                )
            return EXIT_OK
    return EXIT_REFUSED


def main(argv: list[str] | None = None) -> int:
    # What start-up imported lives until the end: the collector need not walk it again and again.
    gc.freeze()
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("azure", "msal", "httpx", "kiota"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    printer = Printer(args.json)
    try:
        return asyncio.run(_run(args, printer))
    except ExomiError as error:
        if args.json:
            print(json.dumps({"error": error.to_dict()}, indent=2))
        else:
            print(f"error: {error.message}", file=sys.stderr)
        return EXIT_REFUSED if error.http_status < 500 else EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def entry() -> NoReturn:
    """The ``exomi`` command: main(), then exit without tearing the interpreter down (that takes half a
    second with the Azure SDKs loaded; every client is closed and the output flushed by then)."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
