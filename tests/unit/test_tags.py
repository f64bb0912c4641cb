"""Tags as a request: each exo-* tag becomes its request field, and a bad value names the tag."""

from __future__ import annotations

import pytest

from shared.errors import TagError
from shared.ids import parse_resource_id
from shared.tags import desired_request

AA = parse_resource_id(
    "/subscriptions/6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c/resourceGroups/rg-exo/providers/"
    "Microsoft.Automation/automationAccounts/aa-exo-01"
)


def test_every_refining_tag_reaches_the_request_whatever_its_casing():
    request = desired_request(
        AA,
        {
            "EXO-Organization": "contoso.onmicrosoft.com",
            "exo-role": "Exchange Administrator",
            "exo-runtime": "7.4",
            "exo-expires": "P30D",
            "Exo-Hybrid-Worker-Group": "ContosoWorkers",
            "exo-identity": "ContosoMI1",
        },
        requested_by="tagger",
    )
    assert request is not None
    assert (request.role, request.runtime, request.expires) == ("Exchange Administrator", "7.4", "P30D")
    assert request.hybrid_worker_group == "ContosoWorkers"
    assert (
        request.identity
        == f"{AA.resource_group_id}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ContosoMI1"
    )


def test_a_resource_without_the_opt_in_asks_for_nothing():
    assert desired_request(AA, {"exo-role": "Exchange Administrator"}, requested_by="tagger") is None


def test_a_bad_value_names_its_tag():
    with pytest.raises(TagError) as caught:
        desired_request(
            AA,
            {"exo-organization": "contoso.onmicrosoft.com", "exo-hybrid-worker-group": "a/b"},
            requested_by="tagger",
        )
    assert caught.value.tag == "exo-hybrid-worker-group"
