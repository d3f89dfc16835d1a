"""Where the catalog comes from: a file, an SSM parameter or an S3 object (TUGBOAT_CONFIG).

Outside the image, a catalog change needs no build: `ssm:///tugboat/catalog` or
`s3://bucket/tugboat.yml` is read at start and again on SIGHUP. Whatever the source, the
text is validated the same strict way before anything uses it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bot.aws.ecs import EcsGateway
from bot.domain.aws import AwsError
from bot.domain.catalog import Catalog, CatalogError, load_catalog, parse_catalog

SSM, S3 = "ssm://", "s3://"
READ_BUDGET_S = 10.0


def is_remote(source: str) -> bool:
    return source.startswith((SSM, S3))


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


async def fetch_catalog(source: str, gateway: EcsGateway) -> Catalog:
    """The catalog at `source`; CatalogError naming the source when it cannot be read or used."""
    if not is_remote(source):
        return load_catalog(Path(source))
    try:
        if source.startswith(SSM):
            name = source.removeprefix(SSM)
            answer = await gateway.call("ssm", region(), "get_parameter", Name=name, WithDecryption=True)
            text = str(answer["Parameter"]["Value"])
        else:
            bucket, _, key = source.removeprefix(S3).partition("/")
            if not bucket or not key:
                raise CatalogError(f"{source}: expected s3://BUCKET/KEY")
            answer = await gateway.call("s3", region(), "get_object", Bucket=bucket, Key=key)
            body = answer["Body"]
            text = (await asyncio.to_thread(body.read)).decode("utf-8")
    except AwsError as exc:
        raise CatalogError(f"{source}: cannot read the catalog: {exc.code}: {exc.aws_message}") from None
    return parse_catalog(text, source)


def read_catalog(source: str) -> Catalog:
    """`fetch_catalog` for the synchronous start of a command, before its event loop runs."""
    if not is_remote(source):
        return load_catalog(Path(source))

    async def read() -> Catalog:
        gateway = EcsGateway(budget_s=READ_BUDGET_S)
        try:
            return await fetch_catalog(source, gateway)
        finally:
            gateway.close()

    return asyncio.run(read())
