"""Least privilege for every role of template.yaml (run by infra/template-check.sh).

Every role, least privilege: no wildcard action or resource, no table scan, deletes and batch
writes only in the partitions named by `dynamodb:LeadingKeys`, the webhook secrets' KMS key
only for the api (function and task, which may also make the data key) and the webhooks
function (which may only unwrap it) and only for that purpose, the api server task's role the
api function's exactly, and the stream consumers' and the api's concurrency reserved.
Each planted widening must be caught.
"""
import copy
import json
import sys

from cfnlint.decode import decode

KEY = {"Fn::GetAtt": ["WebhookSecretsKey", "Arn"]}
PURPOSE = {"StringEquals": {"kms:EncryptionContext:purpose": "live-balances webhook secrets"}}
SCOPED = {"dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
KEY_USERS = {"ApiFunction": {"kms:GenerateDataKey", "kms:Decrypt"},
             "ApiServiceTaskRole": {"kms:GenerateDataKey", "kms:Decrypt"},
             "WebhooksFunction": {"kms:Decrypt"}}
RESERVED = {"ApiFunction": "ApiReservedConcurrency", "FanoutFunction": "FanoutReservedConcurrency",
            "WebhooksFunction": "WebhooksReservedConcurrency"}


def branches(statement):
    """A statement, or both branches of an Fn::If around one (a NoValue branch dropped)."""
    if isinstance(statement, dict) and "Fn::If" in statement:
        for branch in statement["Fn::If"][1:]:
            yield from branches(branch)
    elif isinstance(statement, dict) and statement != {"Ref": "AWS::NoValue"}:
        yield statement


def statements(resource):
    if not isinstance(resource, dict):  # an Fn::ForEach (the lag alarms)
        return []
    props = resource.get("Properties", {})
    if resource.get("Type") == "AWS::Serverless::Function":
        documents = [p for p in props.get("Policies", []) if isinstance(p, dict)]
    elif resource.get("Type") == "AWS::IAM::Role":
        documents = [p.get("PolicyDocument", {}) for p in props.get("Policies", [])]
    else:
        return []
    return [b for d in documents for s in d.get("Statement", []) for b in branches(s)]


def listed(value):
    return [value] if isinstance(value, str) else list(value or [])


def problems(template):
    found = []
    resources = template["Resources"]
    for name, resource in resources.items():
        for statement in statements(resource):
            actions = listed(statement.get("Action"))
            resource_ = statement.get("Resource")
            leading = statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
            for action in actions:
                if action == "*" or action.endswith(":*"):
                    found.append(f"{name} allows every action of {action}")
            if resource_ == "*" or (isinstance(resource_, str) and resource_.endswith("*")):
                found.append(f"{name} has a wildcard resource for {actions}")
            if "dynamodb:Scan" in actions:
                found.append(f"{name} may scan the table")
            if SCOPED & set(actions) and not leading:
                found.append(f"{name} may {sorted(SCOPED & set(actions))} in every partition")
            if resource_ == KEY:
                allowed = KEY_USERS.get(name, set())
                if not set(actions) <= allowed:
                    found.append(f"{name} may {sorted(set(actions) - allowed)} with the webhook secrets' key")
                if statement.get("Condition") != PURPOSE:
                    found.append(f"{name} may use the webhook secrets' key for any purpose")
    for name, parameter in RESERVED.items():
        props = resources.get(name, {}).get("Properties", {})
        if props.get("ReservedConcurrentExecutions") != {"Ref": parameter}:
            found.append(f"{name} has no reserved concurrency (parameter {parameter})")
    api = resources.get("ApiFunction")
    task = resources.get("ApiServiceTaskRole")
    if api and task:
        def table_and_keys(resource):
            return sorted(json.dumps(s, sort_keys=True) for s in statements(resource))
        if table_and_keys(api) != table_and_keys(task):
            found.append("ApiServiceTaskRole's grants differ from ApiFunction's")
    return found


template, errors = decode(sys.argv[1])
if errors:
    sys.exit(f"template-check: cannot read {sys.argv[1]}: {errors}")


def role_statements(t, name):
    return t["Resources"][name]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


planted = {
    "a scan in the poller's role": lambda t: role_statements(t, "PollerTaskRole")[0]["Action"].append("dynamodb:Scan"),
    "the server task's deletes unscoped": lambda t: role_statements(t, "ApiServiceTaskRole")[1].pop("Condition"),
    "the server task allowed more than the function": lambda t: role_statements(t, "ApiServiceTaskRole")[0]["Action"].append("dynamodb:TransactGetItems"),
    "the poller decrypting webhook secrets": lambda t: role_statements(t, "PollerTaskRole").append(
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY, "Condition": PURPOSE}),
    "the webhooks function making data keys": lambda t: t["Resources"]["WebhooksFunction"]["Properties"]["Policies"][0]["Statement"][2].update(
        {"Action": ["kms:GenerateDataKey", "kms:Decrypt"]}),
    "the key for any purpose": lambda t: t["Resources"]["ApiFunction"]["Properties"]["Policies"][0]["Statement"][3].pop("Condition"),
    "a wildcard resource in the fanout": lambda t: t["Resources"]["FanoutFunction"]["Properties"]["Policies"][0]["Statement"][2].update({"Resource": "*"}),
    "the fanout's change-log writes unscoped": lambda t: t["Resources"]["FanoutFunction"]["Properties"]["Policies"][0]["Statement"][1].pop("Condition"),
    "every dynamodb action": lambda t: role_statements(t, "PollerTaskRole")[0]["Action"].append("dynamodb:*"),
    "no reserved concurrency for the fanout": lambda t: t["Resources"]["FanoutFunction"]["Properties"].pop("ReservedConcurrentExecutions"),
    "no ceiling on the api": lambda t: t["Resources"]["ApiFunction"]["Properties"].pop("ReservedConcurrentExecutions"),
}
for what, plant in planted.items():
    broken = copy.deepcopy(template)
    plant(broken)
    if not problems(broken):
        sys.exit(f"template-check: the roles check missed a planted fault ({what}); fix the check")
found = problems(template)
if found:
    sys.exit("template-check: roles:\n  " + "\n  ".join(found))
print("template-check: every role least privilege, the api task's grants the function's, the webhook secrets' key for the api and the webhooks function only, concurrency reserved (and planted faults are caught)")
