"""Plan -> one CloudFormation stack holding every AWS resource the project runs on.

The seed created these by hand and kept a page on the order to delete them in; a stack is
created, updated and deleted as one. The state machine and the schedules inside it are handed in
by the caller (esteira.compile): the very documents `esteira.asl` and `esteira.schedules` render
(the schedules with references to the stack's own state machine and role), so the stack can never
drift from `state_machine.asl.json`, and no renderer imports another.

IAM is least privilege: each role may do only what its one user needs, on this project's
resources only (the statements below say which and why). Names come from `esteira.naming`.
"""

from __future__ import annotations

import json
from typing import Any

from esteira import notifications
from esteira.plan import Plan
from esteira.s3_trigger import INPUT_TRANSFORMER

FORMAT_VERSION = "2010-09-09"
# the ECS-optimised Amazon Linux 2023 AMI, resolved by CloudFormation at deploy time
ECS_AMI = "{{resolve:ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id}}"
# Step Functions' .sync ECS integration watches tasks through this managed EventBridge rule
SFN_ECS_RULE = "StepFunctionsGetEventsForECSTaskRule"


def definition_string(definition: dict[str, Any]) -> str:
    """The ASL as the stack embeds it: compact (an indented copy nearly doubles the template, and an
    inline template is capped at 51,200 bytes), and with every `${` of a config value written as
    `\\u0024{`, the same JSON text to Step Functions, but not a `${Name}` that CloudFormation tools
    read as a reference outside Fn::Sub (cfn-lint E1029)."""
    return json.dumps(definition, separators=(",", ":"), ensure_ascii=False).replace("${", "\\u0024{")


def _ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def _att(name: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, attribute]}


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _trust(service: str) -> dict[str, Any]:
    """Only this account's use of the service may assume the role (confused-deputy guard)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": _ref("AWS::AccountId")}},
    }]}


def _role(description: str, service: str, statements: list[dict[str, Any]],
          managed: list[str | dict[str, str]] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"Description": description[:1000], "AssumeRolePolicyDocument": _trust(service)}
    if statements:
        props["Policies"] = [{"PolicyName": "least-privilege",
                              "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}]
    if managed:
        props["ManagedPolicyArns"] = managed
    return {"Type": "AWS::IAM::Role", "Properties": props}


def _allow(sid: str, actions: list[str], resources: list[Any] | Any, **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _secret_arn(ref: str) -> str:
    """'ssm:/a/b' -> the parameter's ARN; 'secretsmanager:a/b' -> the secret's partial ARN."""
    kind, _, name = ref.partition(":")
    if kind == "ssm":
        return f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/{name.lstrip('/')}"
    return f"arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{name}"


# What the stack's schedules point at: its own state machine, started by its own role.
SCHEDULE_TARGET = {"Ref": "StateMachine"}
SCHEDULE_ROLE = {"Fn::GetAtt": ["SchedulerRole", "Arn"]}


def render_stack(plan: Plan, state_machine: dict[str, Any], schedules: list[dict[str, Any]]) -> dict[str, Any]:
    """The CloudFormation template of a project for an AWS target (dev/prd).

    `state_machine` is the rendered ASL; `schedules` the CreateSchedule bodies rendered with
    SCHEDULE_TARGET and SCHEDULE_ROLE as their target and role.
    """
    aws, placement = plan.aws, plan.placement
    if aws is None or placement is None:
        raise ValueError("a stack needs an AWS target (dev or prd), not the local backend")
    names = plan.names
    compute = plan.compute
    fargate = compute.provider == "fargate"
    resources: dict[str, Any] = {}

    resources["LogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": names.log_group, "RetentionInDays": compute.log_retention_days}}

    # --- notifications: one topic; each address gets the statuses it asked for -----------
    resources["NotificationTopic"] = {"Type": "AWS::SNS::Topic", "Properties": {
        "TopicName": names.sns_topic, "DisplayName": f"esteira {plan.project}"[:100]}}
    wanted: dict[str, list[str]] = {}
    for status, addresses in ((notifications.SUCCEEDED, plan.notifications.on_success),
                              (notifications.FAILED, plan.notifications.on_failure)):
        for address in addresses:
            wanted.setdefault(address.lower(), []).append(status)
    for i, (address, statuses) in enumerate(sorted(wanted.items()), start=1):
        resources[f"NotificationSubscription{i}"] = {"Type": "AWS::SNS::Subscription", "Properties": {
            "TopicArn": _ref("NotificationTopic"), "Protocol": "email", "Endpoint": address,
            "FilterPolicyScope": "MessageAttributes",
            "FilterPolicy": {notifications.STATUS_ATTRIBUTE: statuses}}}

    # --- compute: cluster + capacity ---------------------------------------------------------
    resources["Cluster"] = {"Type": "AWS::ECS::Cluster", "Properties": {
        "ClusterName": names.cluster, "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}}
    if fargate:
        providers: list[Any] = ["FARGATE", "FARGATE_SPOT"]
        default: str | dict[str, str] = placement.capacity_provider
    else:
        _ec2_capacity(resources, plan)
        providers = [_ref("CapacityProvider")]
        default = _ref("CapacityProvider")
    resources["ClusterCapacityProviders"] = {"Type": "AWS::ECS::ClusterCapacityProviderAssociations", "Properties": {
        "Cluster": _ref("Cluster"), "CapacityProviders": providers,
        "DefaultCapacityProviderStrategy": [{"CapacityProvider": default, "Weight": 1, "Base": 0}]}}

    # --- the task: roles + definition --------------------------------------------------------
    registry, _, repository = aws.ecr_repository.partition("/")
    ecr_region = registry.split(".")[3]
    repository_arn = f"arn:${{AWS::Partition}}:ecr:{ecr_region}:{registry.split('.')[0]}:repository/{repository}"
    secrets = dict(plan.secrets)
    execution: list[dict[str, Any]] = [
        _allow("PullTheImageLogin", ["ecr:GetAuthorizationToken"], "*"),  # the API has no resource-level form
        _allow("PullTheImage", ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                "ecr:BatchCheckLayerAvailability"], _sub(repository_arn)),
        _allow("WriteTheLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], _att("LogGroup", "Arn")),
    ]
    ssm = sorted(_secret_arn(r) for r in secrets.values() if r.startswith("ssm:"))
    manager = sorted(_secret_arn(r) + "-??????" for r in secrets.values() if r.startswith("secretsmanager:"))
    if ssm:
        execution.append(_allow("ReadTheSecretsParameters", ["ssm:GetParameters"], [_sub(a) for a in ssm]))
    if manager:
        execution.append(_allow("ReadTheSecrets", ["secretsmanager:GetSecretValue"], [_sub(a) for a in manager]))
    resources["TaskExecutionRole"] = _role(
        f"ECS agent for {plan.project}: pull its image, write its logs, read its secrets",
        "ecs-tasks.amazonaws.com", execution)
    bucket, _, prefix = plan.target.data_root.removeprefix("s3://").partition("/")
    data_prefix = f"{prefix.strip('/')}/{plan.project}".lstrip("/")
    resources["TaskRole"] = _role(
        f"The {plan.project} jobs: read and write the project's data partitions, nothing else",
        "ecs-tasks.amazonaws.com", [
            _allow("ReadWriteTheProjectsData", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                   _sub(f"arn:${{AWS::Partition}}:s3:::{bucket}/{data_prefix}/*")),
            _allow("ListTheProjectsData", ["s3:ListBucket"], _sub(f"arn:${{AWS::Partition}}:s3:::{bucket}"),
                   StringLike={"s3:prefix": [f"{data_prefix}/*"]}),
        ])
    first = plan.steps[0]
    container: dict[str, Any] = {
        "Name": placement.container_name,
        "Image": names.image_uri(aws.ecr_repository),
        "Essential": True,
        # what every step gets; the run's own values (RUN_DATE, RUN_ID, step env) come as overrides
        "Environment": [{"Name": k, "Value": v} for k, v in plan.platform_env],
        "LogConfiguration": {"LogDriver": "awslogs", "Options": {
            "awslogs-group": _ref("LogGroup"), "awslogs-region": _ref("AWS::Region"),
            "awslogs-stream-prefix": placement.log_stream_prefix}},
    }
    if secrets:
        container["Secrets"] = [{"Name": k, "ValueFrom": _sub(_secret_arn(v))} for k, v in sorted(secrets.items())]
    task_definition: dict[str, Any] = {
        "Family": placement.task_definition, "NetworkMode": "awsvpc",
        "RequiresCompatibilities": ["FARGATE" if fargate else "EC2"],
        # defaults for a task started by hand; every step overrides both
        "Cpu": str(first.cpu_units), "Memory": str(first.memory_mib),
        "ExecutionRoleArn": _att("TaskExecutionRole", "Arn"), "TaskRoleArn": _att("TaskRole", "Arn"),
        "ContainerDefinitions": [container],
    }
    if fargate:
        task_definition["RuntimePlatform"] = {"OperatingSystemFamily": "LINUX", "CpuArchitecture": "X86_64"}
    resources["TaskDefinition"] = {"Type": "AWS::ECS::TaskDefinition", "Properties": task_definition}

    # --- the state machine: the exported ASL, run by a role that can run only this project ---
    cluster_arn = f"arn:${{AWS::Partition}}:ecs:${{AWS::Region}}:${{AWS::AccountId}}:cluster/{names.cluster}"
    tasks_arn = f"arn:${{AWS::Partition}}:ecs:${{AWS::Region}}:${{AWS::AccountId}}:task/{names.cluster}/*"
    family_arn = (f"arn:${{AWS::Partition}}:ecs:${{AWS::Region}}:${{AWS::AccountId}}:"
                  f"task-definition/{placement.task_definition}:*")
    resources["StateMachineRole"] = _role(
        f"Step Functions for {plan.project}: run, watch and stop its ECS tasks, notify its topic",
        "states.amazonaws.com", [
            _allow("RunTheProjectsTasks", ["ecs:RunTask"], _sub(family_arn),
                   ArnEquals={"ecs:cluster": _sub(cluster_arn)}),
            _allow("TagTheTasksItRuns", ["ecs:TagResource"], _sub(tasks_arn),
                   StringEquals={"ecs:CreateAction": "RunTask"}),
            _allow("WatchAndStopTheTasks", ["ecs:DescribeTasks", "ecs:StopTask"], _sub(tasks_arn)),
            _allow("PassTheTaskRoles", ["iam:PassRole"],
                   [_att("TaskExecutionRole", "Arn"), _att("TaskRole", "Arn")],
                   StringEquals={"iam:PassedToService": "ecs-tasks.amazonaws.com"}),
            _allow("SyncIntegrationRule", ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                   _sub(f"arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/{SFN_ECS_RULE}")),
            _allow("PublishTheNotifications", ["sns:Publish"], _ref("NotificationTopic")),
        ])
    resources["StateMachine"] = {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
        "StateMachineName": names.state_machine, "StateMachineType": "STANDARD",
        "DefinitionString": definition_string(state_machine),
        "RoleArn": _att("StateMachineRole", "Arn")},
        # the ASL names the cluster, task definition family and topic by name: create them first
        "DependsOn": ["ClusterCapacityProviders", "TaskDefinition", "NotificationTopic"]}

    # --- the schedule: starts this state machine and nothing else ------------------------------
    resources["SchedulerRole"] = _role(
        f"EventBridge Scheduler for {plan.project}: start its state machine",
        "scheduler.amazonaws.com", [_allow("StartTheStateMachine", ["states:StartExecution"], _ref("StateMachine"))])
    for i, request in enumerate(schedules, start=1):
        resources[f"Schedule{i if i > 1 else ''}"] = {"Type": "AWS::Scheduler::Schedule", "Properties": request}

    outputs = {
        "StateMachineArn": {"Value": _ref("StateMachine")},
        "ClusterName": {"Value": _ref("Cluster")},
        "TaskDefinitionArn": {"Value": _ref("TaskDefinition")},
        "NotificationTopicArn": {"Value": _ref("NotificationTopic")},
    }
    if plan.trigger is not None:
        _trigger(resources, outputs, plan)
    return {
        "AWSTemplateFormatVersion": FORMAT_VERSION,
        "Description": f"esteira: {plan.project} {plan.version} ({plan.target.env}) - every resource the "
                       f"pipeline runs on; generated from {plan.directory.name}/config.yaml, do not edit",
        "Resources": resources,
        "Outputs": outputs,
    }


def _trigger(resources: dict[str, Any], outputs: dict[str, Any], plan: Plan) -> None:
    """The EventBridge rule on the bucket's "Object Created" events, pointed at the orchestrator that
    owns production, so each object starts one run: the state machine (through a role that may start
    only it, with the event's values as input), or the SQS queue Airflow's AssetWatcher reads (the raw
    event; a queue policy lets only this rule send)."""
    trigger = plan.trigger
    assert trigger is not None
    names = plan.names
    rule_arn = _sub(f"arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/{names.trigger_rule}")
    if trigger.owner == "step_functions":
        resources["TriggerRole"] = {"Type": "AWS::IAM::Role", "Properties": {
            "Description": f"EventBridge rule {names.trigger_rule}: start {plan.project}'s state machine",
            # only this account's rule of this name may assume it (confused-deputy guard)
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": _ref("AWS::AccountId")},
                              "ArnEquals": {"aws:SourceArn": rule_arn}}}]},
            "Policies": [{"PolicyName": "least-privilege", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                _allow("StartTheStateMachine", ["states:StartExecution"], _ref("StateMachine"))]}}]}}
        target: dict[str, Any] = {"Id": "state-machine", "Arn": _ref("StateMachine"),
                                  "RoleArn": _att("TriggerRole", "Arn"), "InputTransformer": INPUT_TRANSFORMER}
    else:
        resources["TriggerQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": names.trigger_queue,
            # events wait up to 14 days (SQS's longest) for Airflow's triggerer, e.g. through an upgrade
            "MessageRetentionPeriod": 1_209_600, "SqsManagedSseEnabled": True}}
        resources["TriggerQueuePolicy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [_ref("TriggerQueue")],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "OnlyTheTriggerRuleSends", "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
                "Resource": _att("TriggerQueue", "Arn"),
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]}}}
        target = {"Id": "airflow-queue", "Arn": _att("TriggerQueue", "Arn")}
        outputs["TriggerQueueUrl"] = {"Value": _ref("TriggerQueue")}
    bucket = trigger.bucket
    resources["TriggerRule"] = {"Type": "AWS::Events::Rule", "Properties": {
        "Name": names.trigger_rule,
        "Description": f"{plan.project}: objects created in s3://{bucket}/{trigger.prefix}*{trigger.suffix} "
                       "start a run (the bucket must send events to EventBridge), by esteira"[:512],
        "EventBusName": "default",
        "EventPattern": trigger.event_pattern,
        "State": "ENABLED" if trigger.aws_enabled else "DISABLED",
        "Targets": [target]}}


def _ec2_capacity(resources: dict[str, Any], plan: Plan) -> None:
    """Launch template, auto scaling group (spot when asked) and the project's capacity provider."""
    assert plan.aws is not None
    aws = plan.aws
    names = plan.names
    compute = plan.compute
    resources["InstanceRole"] = _role(
        f"EC2 instances of {plan.project}'s cluster: register with ECS",
        "ec2.amazonaws.com", [],
        managed=[_sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role")])
    resources["InstanceProfile"] = {"Type": "AWS::IAM::InstanceProfile",
                                    "Properties": {"Roles": [_ref("InstanceRole")]}}
    user_data = f"#!/bin/bash\necho ECS_CLUSTER={names.cluster} >> /etc/ecs/ecs.config\n"
    resources["LaunchTemplate"] = {"Type": "AWS::EC2::LaunchTemplate", "Properties": {
        "LaunchTemplateName": names.launch_template,
        "LaunchTemplateData": {
            "ImageId": ECS_AMI,
            "InstanceType": compute.ec2_type,
            "IamInstanceProfile": {"Arn": _att("InstanceProfile", "Arn")},
            "SecurityGroupIds": list(aws.network.security_groups),
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "UserData": {"Fn::Base64": user_data},
        }}}
    resources["AutoScalingGroup"] = {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {
        "AutoScalingGroupName": names.auto_scaling_group,
        "MinSize": str(compute.min_quantity), "MaxSize": str(compute.max_quantity),
        "VPCZoneIdentifier": list(aws.network.subnets),
        # the capacity provider's managed termination protection needs this
        "NewInstancesProtectedFromScaleIn": True,
        "MixedInstancesPolicy": {
            "LaunchTemplate": {"LaunchTemplateSpecification": {
                "LaunchTemplateId": _ref("LaunchTemplate"),
                "Version": _att("LaunchTemplate", "LatestVersionNumber")}},
            "InstancesDistribution": {
                "OnDemandBaseCapacity": 0,
                "OnDemandPercentageAboveBaseCapacity": 0 if compute.spot else 100,
                "SpotAllocationStrategy": "price-capacity-optimized"}},
        "Tags": [{"Key": "esteira:project", "Value": plan.project, "PropagateAtLaunch": True}],
    }}
    resources["CapacityProvider"] = {"Type": "AWS::ECS::CapacityProvider", "Properties": {
        "Name": names.capacity_provider,
        "AutoScalingGroupProvider": {
            "AutoScalingGroupArn": _ref("AutoScalingGroup"),
            "ManagedScaling": {"Status": "ENABLED", "TargetCapacity": 100},
            "ManagedTerminationProtection": "ENABLED"}}}
