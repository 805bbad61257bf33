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

resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.name}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker_cpu
  memory                   = var.worker_memory
  execution_role_arn       = aws_iam_role.worker_execution.arn

  container_definitions = jsonencode([{
    name        = "worker"
    image       = var.worker_image
    essential   = true
    stopTimeout = var.worker_stop_timeout
    environment = [
      { name = "HOKUSAI_POOL", value = var.worker_pool },
      { name = "HOKUSAI_HEALTH_ADDR", value = ":8081" },
      { name = "HF_HOME", value = "/var/cache/hokusai" },
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
  name            = "${var.name}-worker"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.worker.arn
  desired_count   = var.worker_min_count
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
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.worker.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.worker_min_count
  max_capacity       = var.worker_max_count
}

# Target tracking on queued jobs per running worker. Hokusai/QueueBacklog
# (dimension Pool) is the pool's pending job count from the /metrics backlog
# gauge, shipped to CloudWatch (see docs/operations.md); RunningTaskCount comes
# from Container Insights.
resource "aws_appautoscaling_policy" "worker_backlog" {
  name               = "${var.name}-worker-backlog"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  resource_id        = aws_appautoscaling_target.worker.resource_id
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.worker_backlog_per_task_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    customized_metric_specification {
      metrics {
        id          = "backlog"
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
              value = aws_ecs_service.worker.name
            }
          }
        }
      }

      metrics {
        id          = "backlog_per_worker"
        label       = "Queued jobs per running worker"
        expression  = "backlog / workers"
        return_data = true
      }
    }
  }
}
