# ElastiCache Redis for asynq: two nodes in two AZs, automatic failover, TLS in
# transit, AUTH token from Secrets Manager.
#
# The tasks get the complete rediss:// URL (AUTH token included) from an SSM
# Parameter Store SecureString. That keeps every Secrets Manager permission off
# the API's roles: the only secret the API task can read is this parameter.

data "aws_secretsmanager_secret_version" "redis_auth_token" {
  secret_id = var.redis_auth_token_secret_arn
}

resource "aws_elasticache_subnet_group" "redis" {
  name       = "${var.name}-redis"
  subnet_ids = var.private_subnet_ids
}

resource "aws_elasticache_parameter_group" "redis" {
  name   = "${var.name}-redis7"
  family = "redis7"

  # Jobs and results live in Redis: evicting keys would lose accepted work.
  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id       = "${var.name}-redis"
  description                = "Hokusai job queues, results and model registry"
  engine                     = "redis"
  engine_version             = var.redis_engine_version
  node_type                  = var.redis_node_type
  num_cache_clusters         = 2
  port                       = local.redis_port
  parameter_group_name       = aws_elasticache_parameter_group.redis.name
  subnet_group_name          = aws_elasticache_subnet_group.redis.name
  security_group_ids         = [aws_security_group.redis.id]
  automatic_failover_enabled = true
  multi_az_enabled           = true
  transit_encryption_enabled = true
  at_rest_encryption_enabled = true
  auth_token                 = data.aws_secretsmanager_secret_version.redis_auth_token.secret_string
  snapshot_retention_limit   = 7
}

resource "aws_ssm_parameter" "redis_url" {
  name        = "/${var.name}/redis-url"
  description = "REDIS_URL of the Hokusai tasks (rediss:// with the AUTH token)"
  type        = "SecureString"
  value       = "rediss://:${urlencode(data.aws_secretsmanager_secret_version.redis_auth_token.secret_string)}@${aws_elasticache_replication_group.redis.primary_endpoint_address}:${local.redis_port}/0"
}
