"""Operability checks of template.yaml: someone is told when something breaks, logs expire,
and the table outlives the stack.

- every alarm notifies the alarm topic (AlarmActions, and OKActions) — an alarm without an
  action tells nobody;
- the alarms an operator relies on exist (one per failure mode the runbooks cover);
- every function logs to a log group of the stack, and every log group (functions, poller,
  api service) has a retention;
- the table is retained on stack deletion or replacement and has deletion protection.

Each check first proves itself on copies of the template with a fault planted, so a check that
silently stopped checking fails here.
"""

import copy
import sys

from cfnlint.decode import decode

# Alarm -> the failure it reports (the runbooks in the docs follow these names).
EXPECTED_ALARMS = {
    "FanoutErrorsAlarm": "fanout function errors",
    "FanoutIteratorAgeAlarm": "fanout behind the table stream",
    "FanoutFailuresAlarm": "records in the fanout's failure queue (updates lost)",
    "WebhooksErrorsAlarm": "webhooks function errors",
    "WebhooksFailuresAlarm": "records in the webhooks function's failure queue",
    "WebhooksIteratorAgeAlarm": "webhooks function behind the table stream",
    "ApiThrottlesAlarm": "api function throttled",
    "PipelineThrottlesAlarm": "fanout or webhooks function throttled",
    "TableThrottlesAlarm": "table throttling",
    "ApiServiceUnhealthyAlarm": "api service task unhealthy",
    "ApiService5xxAlarm": "load balancer 5xx",
}
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
TOPIC = {"Fn::If": ["HasAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}


def alarms(template):
    """Every alarm resource, the per-chain lag alarms of the Fn::ForEach loop included."""
    found = {}
    for name, node in template.get("Resources", {}).items():
        if name.startswith("Fn::ForEach::"):
            for key, inner in node[2].items():
                if isinstance(inner, dict) and inner.get("Type") == "AWS::CloudWatch::Alarm":
                    found[key] = inner
        elif node.get("Type") == "AWS::CloudWatch::Alarm":
            found[name] = node
    return found


def alarm_problems(template):
    problems = []
    present = alarms(template)
    for name in sorted(set(EXPECTED_ALARMS) - set(present)):
        problems.append(f"no alarm {name} ({EXPECTED_ALARMS[name]})")
    if not any(k.startswith("PollerLagAlarm") for k in present):
        problems.append("no per-chain poller lag alarm")
    for name, alarm in present.items():
        props = alarm.get("Properties", {})
        for key in ("AlarmActions", "OKActions"):
            if props.get(key) != [TOPIC]:
                problems.append(f"{name}: {key} is not the alarm topic ({props.get(key)})")
    resources = template["Resources"]
    if resources.get("AlarmTopic", {}).get("Type") != "AWS::SNS::Topic":
        problems.append("no AlarmTopic (SNS) for a stack given no topic")
    return problems


def log_group_name(ref):
    return ref.get("Ref") if isinstance(ref, dict) else None


def logging_problems(template):
    problems = []
    resources = template["Resources"]

    def retained(group):
        node = resources.get(group)
        if node is None or node.get("Type") != "AWS::Logs::LogGroup":
            return f"{group} is not a log group of the stack"
        if "RetentionInDays" not in node.get("Properties", {}):
            return f"log group {group} keeps its logs forever (no RetentionInDays)"
        return None

    for name, node in resources.items():
        kind = node.get("Type") if isinstance(node, dict) else None
        props = node.get("Properties", {}) if isinstance(node, dict) else {}
        if kind in FUNCTION_TYPES:
            group = log_group_name(props.get("LoggingConfig", {}).get("LogGroup"))
            if group is None:
                problems.append(f"{name} logs to a log group the stack does not declare (no LoggingConfig.LogGroup)")
            elif (problem := retained(group)) is not None:
                problems.append(f"{name}: {problem}")
        elif kind == "AWS::ECS::TaskDefinition":
            for container in props.get("ContainerDefinitions", []):
                options = container.get("LogConfiguration", {}).get("Options", {})
                group = log_group_name(options.get("awslogs-group"))
                if group is None:
                    problems.append(f"{name}/{container.get('Name')} logs to no log group of the stack")
                elif (problem := retained(group)) is not None:
                    problems.append(f"{name}/{container.get('Name')}: {problem}")
        elif kind == "AWS::Logs::LogGroup" and "RetentionInDays" not in props:
            problems.append(f"log group {name} keeps its logs forever (no RetentionInDays)")
    return problems


def table_problems(template):
    table = template["Resources"].get("Table", {})
    problems = []
    for key in ("DeletionPolicy", "UpdateReplacePolicy"):
        if table.get(key) != "Retain":
            problems.append(f"the table's {key} is not Retain")
    if table.get("Properties", {}).get("DeletionProtectionEnabled") is not True:
        problems.append("the table has no deletion protection")
    return problems


def problems(template):
    return alarm_problems(template) + logging_problems(template) + table_problems(template)


def main(path):
    template, errors = decode(path)
    if errors:
        sys.exit(f"template-check: cannot read {path}: {errors}")
    resources = template["Resources"]
    planted = {
        "an alarm without actions": lambda r: r["FanoutErrorsAlarm"]["Properties"].pop("AlarmActions"),
        "an alarm sending elsewhere": lambda r: r["TableThrottlesAlarm"]["Properties"].update(OKActions=["arn:aws:sns:us-east-1:123456789012:x"]),
        "a per-chain lag alarm without actions": lambda r: next(
            v for k, v in r.items() if k.startswith("Fn::ForEach::"))[2]["PollerLagAlarm${ChainId}"]["Properties"].pop("AlarmActions"),
        "a missing alarm": lambda r: r.pop("FanoutFailuresAlarm"),
        "a function without its log group": lambda r: r["WebhooksFunction"]["Properties"].pop("LoggingConfig"),
        "a function's log group without retention": lambda r: r["FanoutFunctionLogGroup"]["Properties"].pop("RetentionInDays"),
        "the poller's log group without retention": lambda r: r["PollerLogGroup"]["Properties"].pop("RetentionInDays"),
        "a table deleted with the stack": lambda r: r["Table"].pop("DeletionPolicy"),
        "a table without deletion protection": lambda r: r["Table"]["Properties"].pop("DeletionProtectionEnabled"),
    }
    for what, plant in planted.items():
        broken = copy.deepcopy(template)
        plant(broken["Resources"])
        if not problems(broken):
            sys.exit(f"template-check: the operations check missed a planted fault ({what}); fix the check")
    found = problems(template)
    if found:
        sys.exit("template-check: operations:\n  " + "\n  ".join(found))
    names = sorted(alarms(template))
    print(f"template-check: {len(names)} alarms, each notifying the alarm topic ({', '.join(names)}); "
          "every function and task logs to a log group with retention; the table is retained and "
          "deletion-protected (and planted faults are caught)")


if __name__ == "__main__":
    main(sys.argv[1])
