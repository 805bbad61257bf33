# The worker tier: the only holder of the HuggingFace token. ECS injects it as
# HF_TOKEN from Secrets Manager through the worker's execution role, which may
# read exactly that one secret.

resource "aws_iam_role" "worker_execution" {
  name               = "${var.name}-worker-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "read_hf_token" {
  statement {
    sid       = "ReadHuggingFaceToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.hf_token_secret_arn]
  }
}

resource "aws_iam_role_policy" "worker_read_hf_token" {
  name   = "read-hf-token"
  role   = aws_iam_role.worker_execution.name
  policy = data.aws_iam_policy_document.read_hf_token.json
}

# Two worker services, as docker-compose runs them: one takes partners' sync
# and async predicts, the other batch chunks, so a running batch never holds
# the vCPUs a sync call waits for. Both hold the token. Keys name the
# services; lanes is HOKUSAI_LANES.
locals {
  worker_services = {
    worker = {
      lanes  = "sync,async"
      cpu    = var.worker_cpu
      memory = var.worker_memory
      procs  = var.worker_gomaxprocs
      min    = var.worker_min_count
      max    = var.worker_max_count
    }
    batch-worker = {
      lanes  = "batch"
      cpu    = var.batch_worker_cpu
      memory = var.batch_worker_memory
      procs  = var.batch_worker_gomaxprocs
      min    = var.batch_worker_min_count
      max    = var.batch_worker_max_count
    }
  }
}

resource "aws_ecs_task_definition" "worker" {
  for_each = local.worker_services

  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.worker_execution.arn
  # S3 batches run on the batch lane: only its service reads and writes S3 (s3.tf).
  task_role_arn = each.key == "batch-worker" ? aws_iam_role.batch_worker_task.arn : null

  container_definitions = jsonencode([{
    name        = "worker"
    image       = var.worker_image
    essential   = true
    stopTimeout = var.worker_stop_timeout
    environment = [
      { name = "HOKUSAI_POOL", value = var.worker_pool },
      { name = "HOKUSAI_LANES", value = each.value.lanes },
      { name = "GOMAXPROCS", value = "${each.value.procs}" },
      { name = "HOKUSAI_HEALTH_ADDR", value = ":8081" },
      { name = "HF_HOME", value = "/var/cache/hokusai" },
      { name = "HOKUSAI_S3_ALLOW", value = local.s3_allow },
    ]
    secrets = [
      local.redis_url_secret,
      { name = "HF_TOKEN", valueFrom = var.hf_token_secret_arn },
    ]
    logConfiguration = local.log_configuration.worker

    # A worker that stays not ready (no token, bad token, model it cannot
    # load) past the start period is replaced, and a deployment whose
    # workers never get ready is rolled back by the circuit breaker.
    healthCheck = {
      command     = ["CMD", "/usr/local/bin/hokusai-worker", "healthcheck", "--url", "http://127.0.0.1:8081/readyz"]
      interval    = 15
      timeout     = 5
      retries     = 4
      startPeriod = 300
    }
  }])
}

resource "aws_ecs_service" "worker" {
  for_each = local.worker_services

  name            = "${var.name}-${each.key}"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.worker[each.key].arn
  desired_count   = each.value.min
  launch_type     = "FARGATE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # Autoscaling owns the task count once the service exists.
  lifecycle {
    ignore_changes = [desired_count]
  }
}

resource "aws_appautoscaling_target" "worker" {
  for_each = local.worker_services

  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.worker[each.key].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = each.value.min
  max_capacity       = each.value.max
}

# The sync/async service tracks queued jobs per running worker.
# Hokusai/QueueBacklog (dimensions Pool, Lane) is a lane's pending plus active
# task count from the API's /metrics backlog gauge, shipped to CloudWatch (see
# docs/operations.md); the service's lanes are summed. RunningTaskCount comes
# from Container Insights.
resource "aws_appautoscaling_policy" "worker_backlog" {
  name               = "${var.name}-worker-backlog"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker["worker"].service_namespace
  resource_id        = aws_appautoscaling_target.worker["worker"].resource_id
  scalable_dimension = aws_appautoscaling_target.worker["worker"].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.worker_backlog_per_task_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    customized_metric_specification {
      dynamic "metrics" {
        for_each = split(",", local.worker_services.worker.lanes)

        content {
          id          = "backlog_${metrics.value}"
          return_data = false

          metric_stat {
            stat = "Average"

            metric {
              namespace   = "Hokusai"
              metric_name = "QueueBacklog"

              dimensions {
                name  = "Pool"
                value = var.worker_pool
              }

              dimensions {
                name  = "Lane"
                value = metrics.value
              }
            }
          }
        }
      }

      metrics {
        id          = "workers"
        return_data = false

        metric_stat {
          stat = "Average"

          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"

            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.main.name
            }

            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.worker["worker"].name
            }
          }
        }
      }

      metrics {
        id          = "backlog_per_worker"
        label       = "Queued jobs per running worker"
        expression  = "(${join(" + ", [for lane in split(",", local.worker_services.worker.lanes) : "backlog_${lane}"])}) / workers"
        return_data = true
      }
    }
  }
}

# The batch service tracks CPU instead: a batch queues only a few chunks per
# batch worker at a time (its window), so its backlog does not grow with the
# rows still to score, while a batch worker scoring runs its vCPUs flat out
# and an idle one sits near zero.
resource "aws_appautoscaling_policy" "batch_worker_cpu" {
  name               = "${var.name}-batch-worker-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker["batch-worker"].service_namespace
  resource_id        = aws_appautoscaling_target.worker["batch-worker"].resource_id
  scalable_dimension = aws_appautoscaling_target.worker["batch-worker"].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.batch_worker_cpu_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

# State from before the batch service: the single worker service is now the
# "worker" instance.
moved {
  from = aws_ecs_task_definition.worker
  to   = aws_ecs_task_definition.worker["worker"]
}

moved {
  from = aws_ecs_service.worker
  to   = aws_ecs_service.worker["worker"]
}

moved {
  from = aws_appautoscaling_target.worker
  to   = aws_appautoscaling_target.worker["worker"]
}
