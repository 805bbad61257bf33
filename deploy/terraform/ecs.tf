# What the two tiers share: the cluster, log groups, the task-role trust
# policy, the ECS execution baseline and the Redis URL parameter.

resource "aws_ecs_cluster" "main" {
  name = var.name

  # Container Insights publishes RunningTaskCount, the divisor of the worker
  # scaling metric.
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "api" {
  name              = "/ecs/${var.name}-api"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "worker" {
  name              = "/ecs/${var.name}-worker"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "read_redis_url" {
  statement {
    sid       = "ReadRedisURL"
    actions   = ["ssm:GetParameters"]
    resources = [aws_ssm_parameter.redis_url.arn]
  }
}

locals {
  execution_role_names = {
    api    = aws_iam_role.api_execution.name
    worker = aws_iam_role.worker_execution.name
  }

  # Injected as REDIS_URL into both tiers by the execution role.
  redis_url_secret = { name = "REDIS_URL", valueFrom = aws_ssm_parameter.redis_url.arn }

  log_groups = {
    api    = aws_cloudwatch_log_group.api.name
    worker = aws_cloudwatch_log_group.worker.name
  }

  log_configuration = {
    for tier, group in local.log_groups : tier => {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = group
        "awslogs-region"        = var.aws_region
        "awslogs-stream-prefix" = tier
      }
    }
  }
}

# Image pulls and log delivery (the AWS-managed baseline, no secret access).
resource "aws_iam_role_policy_attachment" "ecs_execution" {
  for_each = local.execution_role_names

  role       = each.value
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "read_redis_url" {
  for_each = local.execution_role_names

  name   = "read-redis-url"
  role   = each.value
  policy = data.aws_iam_policy_document.read_redis_url.json
}
