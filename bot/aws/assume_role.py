"""Sessions for environments with a `role_arn`: credentials that refresh before they expire."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.credentials import DeferredRefreshableCredentials, create_assume_role_refresher


def assumed_session(base: boto3.session.Session, role_arn: str, region: str) -> Any:
    """A boto3 session whose credentials come from STS AssumeRole and renew themselves."""
    sts = base.client("sts", region_name=region)
    refresher = create_assume_role_refresher(sts, {"RoleArn": role_arn, "RoleSessionName": "tugboat"})
    credentials = DeferredRefreshableCredentials(refresh_using=refresher, method="sts-assume-role")
    botocore_session = base._session
    botocore_session._credentials = credentials
    return boto3.session.Session(botocore_session=botocore_session, region_name=region)
