"""Sessions for environments with a `role_arn`: credentials that refresh before they expire.

The STS client gets the gateway's no-retry config, so a refused or throttled AssumeRole fails
the AWS call that needed it and EcsGateway.call's loop (the one retry layer) tries again.
Each AssumeRole request is counted as `assume_role`, the call that needed it not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials, create_assume_role_refresher
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from bot import metrics

OPERATION = "assume_role"


class AssumeRoleFailed(Exception):
    """STS answered with an error or could not be reached: the call needing it was never sent."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def _counted(refresh: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """The refresher, with each STS request counted and its failure named by code."""

    def refresh_counted() -> dict[str, Any]:
        try:
            credentials = refresh()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            metrics.AWS_CALLS.labels(operation=OPERATION, code=code).inc()
            raise AssumeRoleFailed(code, str(exc)) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            metrics.AWS_CALLS.labels(operation=OPERATION, code="ConnectionError").inc()
            raise AssumeRoleFailed("ConnectionError", str(exc)) from exc
        metrics.AWS_CALLS.labels(operation=OPERATION, code="OK").inc()
        return credentials

    return refresh_counted


def assumed_session(
    base: boto3.session.Session, role_arn: str, region: str, *, config: Config | None = None
) -> Any:
    """A boto3 session whose credentials come from STS AssumeRole and renew themselves."""
    sts = base.client("sts", region_name=region, config=config)
    refresher = create_assume_role_refresher(sts, {"RoleArn": role_arn, "RoleSessionName": "tugboat"})
    credentials = DeferredRefreshableCredentials(refresh_using=_counted(refresher), method="sts-assume-role")
    botocore_session = base._session
    botocore_session._credentials = credentials
    return boto3.session.Session(botocore_session=botocore_session, region_name=region)
