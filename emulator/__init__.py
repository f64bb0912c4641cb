"""A local Azure tenant: ARM, Microsoft Graph, the managed-identity endpoint and Event Grid.

Run it with ``python -m emulator``; see ``emulator/README.md`` for the wire surface and the control API.
"""
