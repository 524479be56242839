"""The local pump filters stream records as the template's event source mappings do: the
patterns in infra/local/stream-filters.json are, function by function, the FilterCriteria of
the template's stream events (compared as parsed JSON). A function's mapping changed in one
place and not the other would test it locally on records it does not get in AWS, or miss ones
it does. The check first proves itself on a copy of the template with a pattern changed.
"""

import copy
import json
import sys

from cfnlint.decode import decode

# The template's function -> its name in stream-filters.json (and in the Invoke API's URL).
FUNCTIONS = {"FanoutFunction": "fanout", "WebhooksFunction": "webhooks"}


def template_patterns(template):
    found = {}
    for resource, name in FUNCTIONS.items():
        events = template["Resources"][resource]["Properties"].get("Events", {})
        patterns = []
        for event in events.values():
            if event.get("Type") != "DynamoDB":
                continue
            criteria = event["Properties"].get("FilterCriteria", {})
            patterns += [json.loads(f["Pattern"]) for f in criteria.get("Filters", [])]
        found[name] = sorted(patterns, key=json.dumps)
    return found


def problems(template, local):
    wanted = template_patterns(template)
    have = {
        name: sorted((json.loads(p) for p in local.get(name, [])), key=json.dumps)
        for name in FUNCTIONS.values()
    }
    return [
        f"{name}: the template filters {wanted[name]}, the local pump {have[name]}"
        for name in FUNCTIONS.values()
        if wanted[name] != have[name]
    ]


def main(template_path, local_path):
    template, errors = decode(template_path)
    if errors:
        sys.exit(f"stream-filters: cannot read {template_path}: {errors}")
    with open(local_path) as f:
        local = json.load(f)
    planted = copy.deepcopy(template)
    events = planted["Resources"]["FanoutFunction"]["Properties"]["Events"]
    stream = next(e for e in events.values() if e.get("Type") == "DynamoDB")
    stream["Properties"]["FilterCriteria"]["Filters"][0]["Pattern"] = json.dumps(
        {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "X#"}]}}}}
    )
    if not problems(planted, local):
        sys.exit("stream-filters: a changed fanout filter was not caught")
    found = problems(template, local)
    if found:
        sys.exit("stream-filters: " + "; ".join(found))
    print("template-check: the local pump filters stream records as the template's mappings do")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
