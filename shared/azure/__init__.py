"""Adapters to Azure: ARM (Automation, Compute, Managed Identity) and Microsoft Graph.

Everything above this package talks to ``ArmGateway`` and ``GraphGateway`` and sees only exomi's own
errors (shared.errors), never an SDK exception.
"""
