"""The demo behind ``scripts/demo.sh``.

For now it starts the tenant emulator and walks the admin's manual procedure's first steps through the
real SDKs, showing what the emulator offers; the full exomi demo replaces it as the app lands.
"""

from __future__ import annotations

import os
import sys
import time

from azure.identity import ManagedIdentityCredential
from azure.mgmt.resource.resources import ResourceManagementClient

from emulator.process import EmulatorProcess


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def main() -> int:
    started = time.monotonic()
    step("starting the tenant emulator")
    with EmulatorProcess() as info:
        os.environ.update(info.identity_env())
        print(f"    ARM and Graph at {info.arm_endpoint}, tenant {info.tenant_id}", flush=True)
        credential = ManagedIdentityCredential(client_id=info.admin_client_id)
        resources = ResourceManagementClient(
            credential, info.subscription_id, base_url=info.arm_endpoint, connection_verify=info.ca_bundle
        )
        step("the admin creates resource group ContosoRG")
        group = resources.resource_groups.create_or_update("ContosoRG", {"location": "westus"})
        print(f"    created {group.id}", flush=True)
        step("the admin deletes it again")
        resources.resource_groups.begin_delete("ContosoRG").result()
    print(f"demo finished in {time.monotonic() - started:.1f}s; nothing left running", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
