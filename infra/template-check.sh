#!/usr/bin/env bash
# Offline checks of template.yaml: cfn-lint and SAM's own validation with linting — once per
# choice of the Transport parameter (function-url, service, both) — plus a check that the
# checks themselves catch a broken resource reference.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.tools/venv/bin"
for transport in function-url service both; do
  variant="$(mktemp -d)/template.yaml"
  sed "s/^    Default: function-url\$/    Default: $transport/" template.yaml > "$variant"
  if ! grep -q "^    Default: $transport\$" "$variant"; then
    echo "template-check: the Transport parameter's default is gone; update this script" >&2
    exit 1
  fi
  "$bin/cfn-lint" "$variant"
  "$bin/sam" validate --lint --region us-east-1 --template-file "$variant" >/dev/null
  echo "template-check: Transport=$transport passes cfn-lint and sam validate --lint"
done

# Each choice creates what it promises: conditions evaluated as CloudFormation would, for each
# Transport value.
"$bin/python" - template.yaml <<'PY'
import sys

from cfnlint.decode import decode

template, errors = decode(sys.argv[1])
if errors:
    sys.exit(f"template-check: cannot read {sys.argv[1]}: {errors}")
conditions = template.get("Conditions", {})
resources = template.get("Resources", {})


def value(node, params):
    if isinstance(node, dict) and "Ref" in node:
        return params.get(node["Ref"], template["Parameters"].get(node["Ref"], {}).get("Default"))
    return node


def holds(node, params):
    if isinstance(node, dict):
        (fn, args), = node.items()
        if fn == "Fn::Equals":
            return str(value(args[0], params)) == str(value(args[1], params))
        if fn == "Fn::Not":
            return not holds(args[0], params)
        if fn == "Fn::And":
            return all(holds(a, params) for a in args)
        if fn == "Fn::Or":
            return any(holds(a, params) for a in args)
        if fn == "Condition":
            return holds(conditions[args], params)
    raise SystemExit(f"template-check: cannot evaluate condition {node}")


def created(params):
    return {
        name for name, r in resources.items()
        if "Condition" not in r or holds(conditions[r["Condition"]], params)
    }


service = {"LoadBalancer", "ApiService", "ApiTargetGroup", "HttpListener", "ApiServiceScaling",
           "ApiServiceTaskRole", "ApiServiceTaskDefinition", "ApiServiceStreamsScaling"}
always = {"Table", "FanoutFunction", "PollerService", "WebhooksFunction", "WebhooksFailures"}
for transport, want_function, want_service in [
    ("function-url", True, False), ("service", False, True), ("both", True, True),
]:
    made = created({"Transport": transport, "ServiceCertificateArn": ""})
    problems = []
    if not always <= made:
        problems.append(f"missing {sorted(always - made)}")
    if ("ApiFunction" in made) != want_function:
        problems.append(f"ApiFunction {'missing' if want_function else 'created'}")
    if want_service and not service <= made:
        problems.append(f"missing {sorted(service - made)}")
    if not want_service and made & service:
        problems.append(f"created {sorted(made & service)}")
    with_certificate = created({"Transport": transport, "ServiceCertificateArn": "arn:aws:acm:x"})
    if ("HttpsListener" in with_certificate) != want_service:
        problems.append("HTTPS listener does not follow the certificate")
    if problems:
        sys.exit(f"template-check: Transport={transport}: " + "; ".join(problems))
print("template-check: each Transport choice creates its function URL and/or its service")
PY

broken="$(mktemp -d)/template.yaml"
sed 's/TaskDefinition: !Ref PollerTaskDefinition$/TaskDefinition: !Ref PollerTaskDefinitionz/' template.yaml > "$broken"
if cmp -s template.yaml "$broken"; then
  echo "template-check: the reference used for the negative check is gone; update this script" >&2
  exit 1
fi
if "$bin/cfn-lint" "$broken" >/dev/null 2>&1; then
  echo "template-check: cfn-lint accepted a template with a broken resource reference" >&2
  exit 1
fi
echo "template-check: ok (and a broken reference is caught)"

# No RPC URL in plain configuration: a function's or a task's environment is readable by anyone
# who may read its configuration, so it must not hold an endpoint (they carry API keys) — not
# by variable name, not as a URL, not as a `{{resolve:…}}` reference (CloudFormation writes
# the resolved value in), not as a parameter resolved from SSM or defaulting to a URL. The
# endpoints are read from the chain secret at start. `--self-test` first plants each kind of
# leak in a copy and requires the check to catch it.
"$bin/python" - template.yaml <<'PY'
import copy
import re
import sys

from cfnlint.decode import decode

ENDPOINT_NAME = re.compile(r"^(RPC_URL|WS_URL)|_(WC_)?RPC$")
URL = re.compile(r"(?i)\b(https?|wss?)://")
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}


def environments(template):
    """(where, variables as {name: value}) for every function, the function globals and
    every container of every task definition, ForEach bodies included."""
    found = []
    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {})
    found.append(("Globals.Function", dict(globals_env.get("Variables", {}))))

    def walk(name, node):
        if isinstance(node, dict):
            kind = node.get("Type")
            props = node.get("Properties", {}) if isinstance(node.get("Properties"), dict) else {}
            if kind in FUNCTION_TYPES:
                found.append((name, dict(props.get("Environment", {}).get("Variables", {}))))
            elif kind == "AWS::ECS::TaskDefinition":
                for container in props.get("ContainerDefinitions", []):
                    variables = {e.get("Name"): e.get("Value") for e in container.get("Environment", [])}
                    found.append((f"{name}/{container.get('Name')}", variables))
            else:
                for key, value in node.items():
                    walk(key, value)
        elif isinstance(node, list):
            for value in node:
                walk(name, value)

    walk("Resources", template.get("Resources", {}))
    return found


def leaves(value):
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                yield ("ref", inner)
            else:
                yield from leaves(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from leaves(inner)
    elif isinstance(value, str):
        yield ("text", value)
        for ref in re.findall(r"\$\{([A-Za-z0-9:]+)\}", value):
            yield ("ref", ref)


def leaks(template):
    parameters = template.get("Parameters", {})
    problems = []
    for where, variables in environments(template):
        for name, value in variables.items():
            if ENDPOINT_NAME.search(str(name)):
                problems.append(f"{where}: variable {name} names a chain endpoint")
            for kind, leaf in leaves(value):
                if kind == "text" and "{{resolve:" in leaf:
                    problems.append(f"{where}: {name} resolves a dynamic reference into plain text")
                elif kind == "text" and URL.search(leaf):
                    problems.append(f"{where}: {name} holds a URL")
                elif kind == "ref" and leaf in parameters:
                    parameter = parameters[leaf]
                    if str(parameter.get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
                        problems.append(f"{where}: {name} is SSM parameter {leaf}, resolved into plain text")
                    if URL.search(str(parameter.get("Default", ""))):
                        problems.append(f"{where}: {name} is parameter {leaf}, which defaults to a URL")
    return problems


template, errors = decode(sys.argv[1])
if errors:
    sys.exit(f"template-check: cannot read {sys.argv[1]}: {errors}")

planted = {
    "resolve:ssm in a function": lambda t: t["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"].update(
        {"PROVIDER": {"Fn::Sub": "{{resolve:ssm:/live-balances/rpc-1}}"}}),
    "endpoint name in the globals": lambda t: t["Globals"]["Function"]["Environment"]["Variables"].update(
        {"RPC_URL_1": {"Ref": "AWS::NoValue"}}),
    "URL in the poller task": lambda t: t["Resources"]["PollerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"].append(
        {"Name": "UPSTREAM", "Value": "https://eth.example/v2/KEY"}),
    "endpoint name in the api server task": lambda t: t["Resources"]["ApiServiceTaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"].append(
        {"Name": "RPC_URL", "Value": {"Ref": "AWS::NoValue"}}),
    "SSM-typed parameter in a function": lambda t: (
        t["Parameters"].update({"Rpc": {"Type": "AWS::SSM::Parameter::Value<String>"}}),
        t["Resources"]["FanoutFunction"]["Properties"].setdefault("Environment", {"Variables": {}})["Variables"].update(
            {"UPSTREAM": {"Fn::Sub": "${Rpc}"}}),
    ),
}
for what, plant in planted.items():
    broken = copy.deepcopy(template)
    plant(broken)
    if not leaks(broken):
        sys.exit(f"template-check: the environment check missed a planted leak ({what}); fix the check")

problems = leaks(template)
if problems:
    sys.exit("template-check: RPC URLs must not be in plain configuration:\n  " + "\n  ".join(problems))
print("template-check: no chain endpoint in any function or task environment (and planted leaks are caught)")
PY

# The webhooks function: its own event source mapping on the table's stream (so a slow target
# never holds up the fanout), filtered to what it acts on, with its own queue as the on-failure
# destination, and least privilege — only the table's item actions it uses and sending to that
# queue, never a wildcard, and only the webhook partitions (`dynamodb:LeadingKeys`). `--self-test` style: each planted widening must be caught.
"$bin/python" - template.yaml <<'PY'
import copy
import sys

from cfnlint.decode import decode

ALLOWED = {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
           "dynamodb:DeleteItem", "sqs:SendMessage", "kms:Decrypt"}


def problems(template):
    found = []
    fn = template["Resources"].get("WebhooksFunction")
    if fn is None:
        return ["no WebhooksFunction"]
    props = fn["Properties"]
    events = [e for e in props.get("Events", {}).values() if e.get("Type") == "DynamoDB"]
    if len(events) != 1:
        found.append("WebhooksFunction needs exactly one DynamoDB stream event")
    for event in events:
        p = event["Properties"]
        if p.get("Stream") != {"Fn::GetAtt": ["Table", "StreamArn"]}:
            found.append("its event source is not the table's stream")
        if p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") != {"Fn::GetAtt": ["WebhooksFailures", "Arn"]}:
            found.append("its on-failure destination is not WebhooksFailures")
        if "ReportBatchItemFailures" not in p.get("FunctionResponseTypes", []):
            found.append("it does not report batch item failures")
        patterns = [f.get("Pattern", "") for f in p.get("FilterCriteria", {}).get("Filters", [])]
        if not any('"F#"' in x and "INSERT" in x for x in patterns):
            found.append("its filter does not pass feed-entry inserts")
    if template["Resources"].get("WebhooksFailures", {}).get("Type") != "AWS::SQS::Queue":
        found.append("WebhooksFailures is not an SQS queue")
    for policy in props.get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            resource = statement.get("Resource")
            for action in actions:
                if action not in ALLOWED:
                    found.append(f"WebhooksFunction may {action}")
            if resource in ("*", ["*"]) or (isinstance(resource, str) and "*" in resource):
                found.append(f"WebhooksFunction has a wildcard resource {resource}")
            if any(a.startswith("kms:") for a in actions) and resource != {"Fn::GetAtt": ["WebhookSecretsKey", "Arn"]}:
                found.append("WebhooksFunction may use a KMS key other than the webhook secrets'")
            if any(a.startswith("sqs:") for a in actions) and resource != {"Fn::GetAtt": ["WebhooksFailures", "Arn"]}:
                found.append("WebhooksFunction sends to a queue other than its own")
            if any(a.startswith("dynamodb:") for a in actions) and resource != {"Fn::GetAtt": ["Table", "Arn"]}:
                found.append("WebhooksFunction reaches a table other than the service's")
            leading = statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
            # Its partitions; and one read of the wrapped data key that seals their secrets.
            sealing_key_read = actions == ["dynamodb:GetItem"] and leading == ["A#SEALING"]
            # And, disabling a subscription, let go of its wallets' sessions (`S#`, logged `Q#`).
            holds_let_go = (sorted(actions) == ["dynamodb:GetItem", "dynamodb:UpdateItem"] and leading == ["S#*"]) \
                or (actions == ["dynamodb:PutItem"] and leading == ["Q#*"])
            if any(a.startswith("dynamodb:") for a in actions) and sorted(leading or []) != ["H#*", "W#*"] \
                    and not sealing_key_read and not holds_let_go:
                found.append(f"WebhooksFunction reaches partitions other than the webhooks' (LeadingKeys {leading})")
    return found


template, errors = decode(sys.argv[1])
if errors:
    sys.exit(f"template-check: cannot read {sys.argv[1]}: {errors}")


def statements(t):
    return t["Resources"]["WebhooksFunction"]["Properties"]["Policies"][0]["Statement"]


def stream_props(t):
    return t["Resources"]["WebhooksFunction"]["Properties"]["Events"]["TableStream"]["Properties"]


planted = {
    "a scan of the table": lambda t: statements(t)[0]["Action"].append("dynamodb:Scan"),
    "every partition": lambda t: statements(t)[0].pop("Condition"),
    "the balances' partitions": lambda t: statements(t)[0]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].append("B#*"),
    "a wildcard resource": lambda t: statements(t).append({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}),
    "the fanout's queue": lambda t: statements(t)[1].update({"Resource": {"Fn::GetAtt": ["FanoutFailures", "Arn"]}}),
    "no on-failure destination": lambda t: stream_props(t).pop("DestinationConfig"),
    "no filter for feed entries": lambda t: stream_props(t).pop("FilterCriteria"),
}
for what, plant in planted.items():
    broken = copy.deepcopy(template)
    plant(broken)
    if not problems(broken):
        sys.exit(f"template-check: the webhooks check missed a planted fault ({what}); fix the check")
found = problems(template)
if found:
    sys.exit("template-check: webhooks function:\n  " + "\n  ".join(found))
print("template-check: the webhooks function reads the stream on its own mapping, parks failed batches in its queue, least privilege (and planted faults are caught)")
PY

# Every role, least privilege: no wildcard action or resource, no table scan, deletes and batch
# writes only in the partitions named by `dynamodb:LeadingKeys`, the webhook secrets' KMS key
# only for the api (function and task, which may also make the data key) and the webhooks
# function (which may only unwrap it) and only for that purpose, the api server task's role the
# api function's exactly, and the stream consumers' and the api's concurrency reserved.
# Each planted widening must be caught.
"$bin/python" infra/template_checks/roles.py template.yaml
# Operability: every alarm notifies someone, every log group expires, the table outlives the
# stack (infra/template_checks/operations.py, which proves each check on planted faults).
"$bin/python" infra/template_checks/operations.py template.yaml
# A repeatable deploy: the example of recorded answers fits the template, and `make deploy`
# passes them with the images it builds (dry run).
"$bin/python" infra/template_checks/deploy.py template.yaml infra/deploy/samconfig.example.toml
# The local pump passes a function the records its event source mapping's filter criteria
# pass in AWS, no others.
"$bin/python" infra/template_checks/stream_filters.py template.yaml infra/local/stream-filters.json

# `sam build` compiles the functions for arm64 with cargo-lambda and zig, as a deploy would.
# `--language-extensions` lets it read past Fn::ForEach (the built template keeps the loop, which
# CloudFormation expands at deploy with the real ChainIds).
if [ "${SKIP_SAM_BUILD:-0}" != 1 ]; then
  build_dir="$PWD/target/sam-build"
  PATH="$bin:$PATH" "$bin/sam" build --language-extensions --region us-east-1 --build-dir "$build_dir" --cache-dir "$PWD/target/sam-cache" >/dev/null
  for fn in ApiFunction FanoutFunction WebhooksFunction; do
    artifact="$build_dir/$fn/bootstrap"
    if ! od -An -tx1 -j18 -N2 "$artifact" 2>/dev/null | grep -q "b7 00"; then
      echo "template-check: $artifact is missing or not an arm64 ELF" >&2
      exit 1
    fi
  done
  echo "template-check: sam build produced arm64 artifacts for ApiFunction, FanoutFunction and WebhooksFunction"
fi
