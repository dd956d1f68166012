"""S3 object addresses: ``s3://bucket/key``, parsed and written in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

SCHEME = "s3://"
# S3's bucket naming rule (3-63 characters: lower case, digits, dots and hyphens, a letter or digit at both
# ends, no two dots in a row); anything else can never name a real bucket.
BUCKET_NAME = re.compile(r"(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str
    scheme: Literal["s3"] = "s3"

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def parse_s3_uri(text: str) -> S3Uri:
    """The bucket and key of ``s3://bucket/key``; ValueError saying what is wrong otherwise.

    Like the AWS CLI, everything after the bucket is the key, ``?`` and ``#`` included. The scheme is matched
    as written (lower case); a caller that accepts ``S3://`` lower-cases it first.
    """
    if not text.startswith(SCHEME):
        raise ValueError(f"not an {SCHEME}bucket/key URI")
    bucket, _, key = text[len(SCHEME):].partition("/")
    if not BUCKET_NAME.fullmatch(bucket):
        raise ValueError(f"{bucket!r} is not a valid S3 bucket name")
    if not key:
        raise ValueError(f"an {SCHEME} URI needs an object key after the bucket: {SCHEME}bucket/key")
    return S3Uri(bucket, key)


def parse_s3_prefix(text: str) -> S3Uri:
    """The bucket and key prefix of ``s3://bucket[/prefix]``, the prefix without slashes at its ends (maybe empty);
    ValueError saying what is wrong otherwise."""
    if not text.startswith(SCHEME):
        raise ValueError(f"not an {SCHEME}bucket[/prefix] URI")
    bucket, _, prefix = text[len(SCHEME):].partition("/")
    if not BUCKET_NAME.fullmatch(bucket):
        raise ValueError(f"{bucket!r} is not a valid S3 bucket name")
    return S3Uri(bucket, prefix.strip("/"))
