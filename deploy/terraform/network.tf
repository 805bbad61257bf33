# Traffic allowed: internet -> ALB (80, 443); ALB -> API tasks (8080);
# API and worker tasks -> Redis (6379) and HTTPS (ECR, logs, SSM, Secrets
# Manager, the HuggingFace Hub). Nothing reaches the workers or Redis from
# outside.

locals {
  api_port   = 8080
  redis_port = 6379

  task_security_groups = {
    api    = aws_security_group.api.id
    worker = aws_security_group.worker.id
  }
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Hokusai load balancer"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "api" {
  name        = "${var.name}-api"
  description = "Hokusai API tasks"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "worker" {
  name        = "${var.name}-worker"
  description = "Hokusai worker tasks"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "redis" {
  name        = "${var.name}-redis"
  description = "Hokusai Redis"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb" {
  for_each = {
    for pair in setproduct(var.alb_ingress_cidrs, [80, 443]) : "${pair[0]}:${pair[1]}" => {
      cidr = pair[0]
      port = pair[1]
    }
  }

  security_group_id = aws_security_group.alb.id
  description       = "Clients to the load balancer"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
}

resource "aws_vpc_security_group_egress_rule" "alb_to_api" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Load balancer to API tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.api_port
  to_port                      = local.api_port
  referenced_security_group_id = aws_security_group.api.id
}

resource "aws_vpc_security_group_ingress_rule" "api_from_alb" {
  security_group_id            = aws_security_group.api.id
  description                  = "Load balancer to API tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.api_port
  to_port                      = local.api_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "task_to_redis" {
  for_each = local.task_security_groups

  security_group_id            = each.value
  description                  = "Tasks to Redis"
  ip_protocol                  = "tcp"
  from_port                    = local.redis_port
  to_port                      = local.redis_port
  referenced_security_group_id = aws_security_group.redis.id
}

resource "aws_vpc_security_group_egress_rule" "task_https" {
  for_each = local.task_security_groups

  security_group_id = each.value
  description       = "Tasks to AWS APIs, ECR and the HuggingFace Hub"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_task" {
  for_each = local.task_security_groups

  security_group_id            = aws_security_group.redis.id
  description                  = "Tasks to Redis"
  ip_protocol                  = "tcp"
  from_port                    = local.redis_port
  to_port                      = local.redis_port
  referenced_security_group_id = each.value
}
