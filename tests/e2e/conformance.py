"""Schemathesis over one of a real server's OpenAPI documents: no generated request may
get a 5xx, and every response must conform to the document (status codes, content types,
bodies)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

__all__ = ["check_conformance"]


def check_conformance(url: str, document: str, key: str, *, max_examples: int) -> list[str]:
    """Run every operation of ``/openapi/<document>.json`` at ``url``; their labels.

    Schema-valid is not always valid (a dialect checks more than JSON Schema can say), so
    a 4xx for a schema-valid request is right, not a failure: that check is left out.
    """
    schema = schemathesis.openapi.from_url(f"{url}/openapi/{document}.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))
        def conforms(case: Any) -> None:
            case.call_and_validate(
                base_url=url,
                headers={"Authorization": f"Bearer {key}"},
                excluded_checks=[positive_data_acceptance],
            )

        conforms()
    return [operation.label for operation in operations]
