"""A small IAM policy checker for the deployment tests: grammar, and whether a request would be allowed.

It evaluates identity policies the way IAM does for what these documents use (Allow/Deny, Action and
Resource with * and ? wildcards, the condition operators below, and IAM's policy variables in condition values,
filled from the request's context); anything else is reported as a grammar problem rather than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping

VERSION = "2012-10-17"
IDENTITY_KEYS = {"Sid", "Effect", "Action", "Resource", "Condition"}
TRUST_KEYS = {"Sid", "Effect", "Action", "Principal", "Condition"}
CONDITION_OPERATORS = {"StringEquals", "StringLike", "ForAllValues:StringEquals", "ForAllValues:StringLike", "Bool"}
# IAM actions that support no resource-level permission: their statements must name Resource "*".
NO_RESOURCE_LEVEL = frozenset({"sqs:ListQueues", "ec2:DescribeInstances", "ec2:DescribeSpotPriceHistory"})
# S3's IAM action names are not all its API operation names; these are the ones the documents may use.
S3_ACTIONS = frozenset({
    "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:CreateBucket",
    "s3:PutBucketPublicAccessBlock", "s3:PutEncryptionConfiguration", "s3:GetLifecycleConfiguration",
    "s3:PutLifecycleConfiguration",
})
# KMS actions the documents may use: a grant for EC2 on the GPU volumes' key, made when an instance starts.
KMS_ACTIONS = frozenset({"kms:CreateGrant"})
BOTOCORE_SERVICES = {"sqs": "sqs", "sns": "sns", "dynamodb": "dynamodb", "ec2": "ec2"}
# The largest managed policy IAM accepts, counted without white space.
MANAGED_POLICY_LIMIT = 6144
# IAM's policy variables the documents may use in condition values (filled from the request), and only there.
POLICY_VARIABLE = re.compile(r"\$\{([A-Za-z0-9]+:[A-Za-z0-9/]+)\}")
POLICY_VARIABLES = frozenset({"ec2:SourceInstanceARN"})


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=None)
def api_operations(service: str) -> frozenset[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    return frozenset(model.operation_names)


def is_known_action(action: str) -> bool:
    service, _, name = action.partition(":")
    if service == "s3":
        return action in S3_ACTIONS
    if service == "sts":
        return action == "sts:AssumeRole"
    if service == "kms":
        return action in KMS_ACTIONS
    if service in BOTOCORE_SERVICES:
        return name in api_operations(BOTOCORE_SERVICES[service])
    return False


def grammar_problems(document: Any, *, trust: bool = False) -> list[str]:
    """Why `document` is not a well-formed policy of the kind the deployment uses (empty: it is)."""
    problems: list[str] = []
    if not isinstance(document, dict) or set(document) != {"Version", "Statement"}:
        return ["a policy is an object with exactly Version and Statement"]
    if document["Version"] != VERSION:
        problems.append(f"Version must be {VERSION!r}")
    statements = document["Statement"]
    if not isinstance(statements, list) or not statements:
        return problems + ["Statement must be a non-empty list"]
    sids: set[str] = set()
    for n, statement in enumerate(statements):
        where = f"statement {n}"
        if not isinstance(statement, dict):
            problems.append(f"{where}: not an object")
            continue
        allowed_keys = TRUST_KEYS if trust else IDENTITY_KEYS
        for key in sorted(set(statement) - allowed_keys):
            problems.append(f"{where}: {key} is not used in these documents")
        required = {"Effect", "Action", "Principal"} if trust else {"Effect", "Action", "Resource"}
        for key in sorted(required - set(statement)):
            problems.append(f"{where}: {key} is missing")
        sid = statement.get("Sid")
        if not isinstance(sid, str) or not re.fullmatch(r"[A-Za-z0-9]+", sid):
            problems.append(f"{where}: Sid must be letters and digits, got {sid!r}")
        elif sid in sids:
            problems.append(f"{where}: Sid {sid} is used twice")
        else:
            sids.add(sid)
            where = f"statement {sid}"
        if statement.get("Effect") not in {"Allow", "Deny"}:
            problems.append(f"{where}: Effect must be Allow or Deny")
        actions = as_list(statement.get("Action", []))
        if not actions or not all(isinstance(a, str) for a in actions):
            problems.append(f"{where}: Action must be a string or a non-empty list of strings")
            actions = []
        for action in actions:
            if "*" in action or "?" in action:
                problems.append(f"{where}: wildcard action {action!r}")
            elif not is_known_action(action):
                problems.append(f"{where}: unknown action {action!r}")
        if len(set(actions)) != len(actions):
            problems.append(f"{where}: an action is listed twice")
        if not trust:
            resources = as_list(statement.get("Resource", []))
            if not resources or not all(isinstance(r, str) and r for r in resources):
                problems.append(f"{where}: Resource must be a string or a non-empty list of strings")
                resources = []
            if "*" in resources and not set(actions) <= NO_RESOURCE_LEVEL:
                problems.append(f"{where}: Resource \"*\" for actions that support resource-level permissions: "
                                f"{sorted(set(actions) - NO_RESOURCE_LEVEL)}")
            if set(actions) & NO_RESOURCE_LEVEL and resources != ["*"]:
                problems.append(f"{where}: {sorted(set(actions) & NO_RESOURCE_LEVEL)} need Resource \"*\"")
            for resource in resources:
                # A whole ARN from the settings (${EBS_KMS_KEY}) is checked once rendered.
                if resource != "*" and not resource.startswith(("arn:aws:", "${")):
                    problems.append(f"{where}: resource {resource!r} is not an ARN")
        condition = statement.get("Condition", {})
        if not isinstance(condition, dict):
            problems.append(f"{where}: Condition must be an object")
            continue
        for operator, tests in condition.items():
            if operator not in CONDITION_OPERATORS:
                problems.append(f"{where}: condition operator {operator} is not one this checker evaluates")
            if not isinstance(tests, dict) or not tests:
                problems.append(f"{where}: {operator} must map condition keys to values")
                continue
            for value in (v for wanted in tests.values() for v in as_list(wanted)):
                for name in set(POLICY_VARIABLE.findall(str(value))) - POLICY_VARIABLES:
                    problems.append(f"{where}: policy variable ${{{name}}} is not one this checker fills")
        outside = {key: statement[key] for key in ("Action", "Resource", "Principal") if key in statement}
        if POLICY_VARIABLE.search(str(outside)):
            problems.append(f"{where}: a policy variable outside a condition value")
    return problems


@dataclass(frozen=True)
class Request:
    """One authorization IAM makes for an API call: an action on a resource, with its condition keys."""

    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""  # what made the request, for messages

    def __str__(self) -> str:
        extra = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{extra}" + (f"  ({self.origin})" if self.origin else "")


def _pattern(text: str) -> re.Pattern:
    """IAM wildcard matching: * any run of characters (slashes and colons too), ? one character."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text), re.S)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    flags = re.I if ignore_case else 0
    return re.fullmatch(_pattern(pattern).pattern, value, flags | re.S) is not None


def _filled(value: str, context: Mapping[str, Any]) -> str | None:
    """A condition value with IAM's policy variables filled from the request; None when one has no value there (IAM
    then cannot match the condition: "If AWS cannot resolve a variable this might cause the entire statement to be
    invalid")."""
    missing = False

    def one(match: re.Match) -> str:
        nonlocal missing
        if match.group(1) not in context:
            missing = True
            return ""
        return str(context[match.group(1)])

    filled = POLICY_VARIABLE.sub(one, value)
    return None if missing else filled


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, Any]) -> bool:
    wanted_values = [v for v in (_filled(str(w), context) for w in as_list(wanted)) if v is not None]
    present = key in context
    values = [str(v) for v in as_list(context.get(key, []))]
    if operator.startswith("ForAllValues:"):
        test = operator.split(":", 1)[1]
        # IAM: every value in the request must match one of the policy's; no value at all also passes.
        return all(_single(test, v, wanted_values) for v in values)
    if not present:
        return False
    return any(_single(operator, v, wanted_values) for v in values)


def _single(operator: str, value: str, wanted: list[str]) -> bool:
    if operator == "StringEquals":
        return value in wanted
    if operator == "StringLike":
        return any(wildcard_match(w, value) for w in wanted)
    if operator == "Bool":
        return value.lower() in {w.lower() for w in wanted}
    raise ValueError(f"condition operator {operator} is not evaluated here")


def _matches(statement: Mapping[str, Any], request: Request) -> bool:
    if not any(wildcard_match(a, request.action, ignore_case=True) for a in as_list(statement["Action"])):
        return False
    if not any(r == "*" or wildcard_match(r, request.resource) for r in as_list(statement["Resource"])):
        return False
    for operator, tests in statement.get("Condition", {}).items():
        for key, wanted in tests.items():
            if not _condition_holds(operator, key, wanted, request.context):
                return False
    return True


def allowed(documents: Iterable[Mapping[str, Any]], request: Request) -> bool:
    """IAM's answer for one request against the policies attached to one principal: an explicit Deny wins,
    else an Allow that matches, else the implicit deny."""
    statements = [s for d in documents for s in d["Statement"]]
    if any(s["Effect"] == "Deny" and _matches(s, request) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _matches(s, request) for s in statements)


def refused(documents: Iterable[Mapping[str, Any]], requests: Iterable[Request]) -> list[Request]:
    documents = list(documents)
    return [r for r in requests if not allowed(documents, r)]


def minified_length(document: Any) -> int:
    import json

    return len(re.sub(r"\s", "", json.dumps(document)))


# ARNs of the resources gpuorch uses.
def queue_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def table_arn(region: str, account: str, table: str, index: str | None = None) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}" + (f"/index/{index}" if index else "")


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def instance_arn(region: str, account: str, instance_id: str) -> str:
    return f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"
