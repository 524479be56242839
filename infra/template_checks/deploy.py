"""The deploy can be repeated: infra/deploy/samconfig.example.toml names only parameters the
template has, and with the images `make deploy` builds it sets every parameter that has no
default; `make deploy`'s dry run over it ends in one `sam deploy` carrying all of them."""

import subprocess
import sys
import tempfile
import tomllib

from cfnlint.decode import decode

# Set by infra/deploy/deploy.sh from the images it pushes.
SET_BY_DEPLOY = {"PollerImage", "ServiceImage"}


def main(template_path, example_path):
    template, errors = decode(template_path)
    if errors:
        sys.exit(f"template-check: cannot read {template_path}: {errors}")
    parameters = template["Parameters"]
    with open(example_path, "rb") as f:
        example = tomllib.load(f)["default"]
    overrides = dict(p.split("=", 1) for p in example["deploy"]["parameters"]["parameter_overrides"])
    unknown = sorted(set(overrides) - set(parameters))
    if unknown:
        sys.exit(f"template-check: {example_path} sets parameters the template does not have: {unknown}")
    required = {name for name, p in parameters.items() if "Default" not in p}
    missing = sorted(required - set(overrides) - SET_BY_DEPLOY)
    if missing:
        sys.exit(f"template-check: {example_path} leaves required parameters unset: {missing}")
    with open(example_path) as f:
        text = f.read()
    documented = {name for name in parameters if f'"{name}=' in text}
    undocumented = sorted(set(parameters) - documented - SET_BY_DEPLOY)
    if undocumented:
        sys.exit(f"template-check: {example_path} does not list (even commented) {undocumented}")

    grouped = [name for group in template.get("Metadata", {}).get("AWS::CloudFormation::Interface", {}).get("ParameterGroups", [])
               for name in group["Parameters"]]
    if sorted(grouped) != sorted(parameters):
        sys.exit("template-check: the template's ParameterGroups must name every parameter once: "
                 f"missing {sorted(set(parameters) - set(grouped))}, extra or repeated {sorted(n for n in grouped if grouped.count(n) > 1 or n not in parameters)}")

    with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
        config.write(text)
        config.flush()
        for transport, images in [("function-url", ["PollerImage="]), ("service", ["PollerImage=", "ServiceImage="])]:
            with open(config.name, "w") as f:
                f.write(text.replace('"Transport=function-url"', f'"Transport={transport}"'))
            out = subprocess.run(["infra/deploy/deploy.sh"], env={"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "SAMCONFIG": config.name},
                                 capture_output=True, text=True, check=True).stdout
            deploys = [line for line in out.splitlines() if line.startswith("+ sam deploy")]
            if len(deploys) != 1:
                sys.exit(f"template-check: make deploy's dry run ({transport}) does not end in one sam deploy:\n{out}")
            for wanted in images + [f"{name}=" for name in sorted(required - SET_BY_DEPLOY)]:
                if wanted not in deploys[0]:
                    sys.exit(f"template-check: make deploy ({transport}) does not pass {wanted}…:\n{deploys[0]}")
            if transport == "function-url" and "ServiceImage=" in deploys[0]:
                sys.exit("template-check: make deploy builds the server image for a function-URL stack")
    print("template-check: samconfig.example.toml lists every parameter and sets every required one; "
          "make deploy's dry run passes them with the images it builds, for each Transport")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
