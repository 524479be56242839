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
always = {"Table", "FanoutFunction", "PollerService"}
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

# `sam build` compiles both functions for arm64 with cargo-lambda and zig, as a deploy would.
if [ "${SKIP_SAM_BUILD:-0}" != 1 ]; then
  build_dir="$PWD/target/sam-build"
  PATH="$bin:$PATH" "$bin/sam" build --region us-east-1 --build-dir "$build_dir" --cache-dir "$PWD/target/sam-cache" >/dev/null
  for fn in ApiFunction FanoutFunction; do
    artifact="$build_dir/$fn/bootstrap"
    if ! od -An -tx1 -j18 -N2 "$artifact" 2>/dev/null | grep -q "b7 00"; then
      echo "template-check: $artifact is missing or not an arm64 ELF" >&2
      exit 1
    fi
  done
  echo "template-check: sam build produced arm64 artifacts for ApiFunction and FanoutFunction"
fi
