#!/usr/bin/env bash
# `make deploy`: builds and pushes the container images, then builds and deploys the stack with
# the answers recorded in samconfig.toml (start from infra/deploy/samconfig.example.toml).
#
# Needs: AWS credentials for the target account, the aws CLI, docker with buildx (arm64
# images), and the tools `make install` puts in .tools/ (sam, cargo-lambda). Idempotent: the
# image repositories are created only when missing, and an unchanged stack deploys nothing.
# `DRY_RUN=1` prints every command instead of running it (what `make test` checks).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export PATH="$root/.tools/venv/bin:$PATH"
config="${SAMCONFIG:-$root/samconfig.toml}"
dry_run="${DRY_RUN:-0}"

run() {
  if [ "$dry_run" = 1 ]; then
    printf '+ %s\n' "$*"
  else
    "$@"
  fi
}

if [ ! -f "$config" ]; then
  echo "deploy: no $config — copy infra/deploy/samconfig.example.toml there and fill it in" >&2
  exit 1
fi
# The stack's name, region and Transport from the recorded answers.
read -r stack region transport < <(python3 - "$config" <<'PY'
import sys, tomllib
config = tomllib.load(open(sys.argv[1], "rb"))["default"]
stack = config["global"]["parameters"]["stack_name"]
region = config["global"]["parameters"]["region"]
overrides = dict(p.split("=", 1) for p in config["deploy"]["parameters"]["parameter_overrides"])
print(stack, region, overrides.get("Transport", "function-url"))
PY
)

if [ "$dry_run" = 1 ]; then
  account="123456789012"
else
  for tool in aws docker sam; do
    command -v "$tool" >/dev/null || { echo "deploy: $tool is not installed" >&2; exit 1; }
  done
  account="$(aws sts get-caller-identity --query Account --output text)"
fi
registry="$account.dkr.ecr.$region.amazonaws.com"
tag="$(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD || echo -dirty)"

images=(poller)
[ "$transport" != function-url ] && images+=(server)
if [ "$dry_run" = 1 ]; then
  echo "+ aws ecr get-login-password --region $region | docker login --username AWS --password-stdin $registry"
else
  aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
fi
overrides=()
for image in "${images[@]}"; do
  repository="$stack-$image"
  if [ "$dry_run" = 1 ] || ! aws ecr describe-repositories --region "$region" --repository-names "$repository" >/dev/null 2>&1; then
    run aws ecr create-repository --region "$region" --repository-name "$repository" \
      --image-scanning-configuration scanOnPush=true
  fi
  uri="$registry/$repository:$tag"
  run docker buildx build --platform linux/arm64 -f "infra/$image.Dockerfile" -t "$uri" --push .
  case "$image" in
    poller) overrides+=("PollerImage=$uri") ;;
    server) overrides+=("ServiceImage=$uri") ;;
  esac
done

run sam build --config-file "$config" --language-extensions
# The recorded overrides plus the images just pushed (SAM merges them, these last).
recorded="$(python3 - "$config" <<'PY'
import shlex, sys, tomllib
config = tomllib.load(open(sys.argv[1], "rb"))["default"]
print(" ".join(shlex.quote(p) for p in config["deploy"]["parameters"]["parameter_overrides"]))
PY
)"
eval "recorded_overrides=($recorded)"
run sam deploy --config-file "$config" --parameter-overrides "${recorded_overrides[@]}" "${overrides[@]}"
