# The API tier: authenticates, validates and enqueues. It holds no HuggingFace
# token and no Secrets Manager permission (the first outage came from serving
# code that needed the token; deploy/terraform_test.go keeps it out).

resource "aws_iam_role" "api_execution" {
  name               = "${var.name}-api-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${var.name}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.api_cpu
  memory                   = var.api_memory
  execution_role_arn       = aws_iam_role.api_execution.arn

  container_definitions = jsonencode([{
    name         = "api"
    image        = var.api_image
    essential    = true
    portMappings = [{ containerPort = local.api_port, protocol = "tcp" }]
    environment = [
      { name = "HOKUSAI_LISTEN", value = ":${local.api_port}" },
      { name = "GOMAXPROCS", value = "${var.api_gomaxprocs}" },
      { name = "HOKUSAI_S3_ALLOW", value = local.s3_allow },
    ]
    secrets          = [local.redis_url_secret]
    logConfiguration = local.log_configuration.api

    # Liveness only: when Redis blips, the target group's /ready check takes
    # tasks out of rotation without ECS replacing all of them.
    healthCheck = {
      command     = ["CMD", "/usr/local/bin/hokusai-api", "healthcheck", "--url", "http://127.0.0.1:${local.api_port}/health"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 15
    }
  }])
}

resource "aws_ecs_service" "api" {
  name                              = "${var.name}-api"
  cluster                           = aws_ecs_cluster.main.id
  task_definition                   = aws_ecs_task_definition.api.arn
  desired_count                     = var.api_desired_count
  launch_type                       = "FARGATE"
  health_check_grace_period_seconds = 30

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.api.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "api"
    container_port   = local.api_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  depends_on = [aws_lb_listener_rule.api]
}
