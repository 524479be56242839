#!/usr/bin/env bash
# Offline checks of template.yaml: cfn-lint and SAM's own validation with linting, plus a check
# that the checks themselves catch a broken resource reference.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.tools/venv/bin"
"$bin/cfn-lint" template.yaml
"$bin/sam" validate --lint --region us-east-1 --template-file template.yaml

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
