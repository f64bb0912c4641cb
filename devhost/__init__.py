"""Local stand-ins for the Azure Functions host environment (see devhost/README.md).

- ``devhost.host.DevHost``: serve a v2-model function app like ``func start`` (in-process, asyncio);
- ``devhost.process.DevHostProcess``: the same as a ``python -m devhost`` child process (tests, demo);
- ``devhost.azurite.AzuriteProcess``: start Azurite on free ports.
"""
