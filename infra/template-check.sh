#!/usr/bin/env bash
# Offline checks of template.yaml: cfn-lint and SAM's own validation with linting.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.tools/venv/bin"
"$bin/cfn-lint" template.yaml
"$bin/sam" validate --lint --region us-east-1 --template-file template.yaml
