output "batch_worker_task_role_arn" {
  description = "ARN of the batch worker's task role, the principal S3 batches read and write as."
  value       = aws_iam_role.batch_worker_task.arn
}

output "s3_bucket_policy_statement" {
  description = "The statement a bucket of s3_batch_locations owned elsewhere adds to its policy so the batch worker may read and write there (JSON)."
  value = jsonencode({
    Sid       = "HokusaiBatchWorker"
    Effect    = "Allow"
    Principal = { AWS = aws_iam_role.batch_worker_task.arn }
    Action    = local.s3_batch_actions
    Resource  = local.s3_batch_objects
  })
}

output "api_url" {
  description = "HTTPS base URL of the load balancer (point the certificate's DNS name at alb_dns_name)."
  value       = "https://${aws_lb.api.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the load balancer, for the API's CNAME or alias record."
  value       = aws_lb.api.dns_name
}

output "alb_zone_id" {
  description = "Route 53 hosted zone ID of the load balancer, for an alias record."
  value       = aws_lb.api.zone_id
}

output "cluster_name" {
  description = "Name of the ECS cluster running both tiers."
  value       = aws_ecs_cluster.main.name
}

output "api_service_name" {
  description = "Name of the API ECS service."
  value       = aws_ecs_service.api.name
}

output "worker_service_name" {
  description = "Name of the sync/async worker ECS service (force-redeploy it and the batch one after a token rotation)."
  value       = aws_ecs_service.worker["worker"].name
}

output "batch_worker_service_name" {
  description = "Name of the batch worker ECS service (HOKUSAI_LANES=batch)."
  value       = aws_ecs_service.worker["batch-worker"].name
}

output "redis_primary_endpoint" {
  description = "Primary endpoint of the Redis replication group (TLS, AUTH token required)."
  value       = aws_elasticache_replication_group.redis.primary_endpoint_address
}

output "redis_url_parameter_arn" {
  description = "ARN of the SSM SecureString holding REDIS_URL for both tiers."
  value       = aws_ssm_parameter.redis_url.arn
}

output "api_log_group" {
  description = "CloudWatch log group of the API tasks."
  value       = aws_cloudwatch_log_group.api.name
}

output "worker_log_group" {
  description = "CloudWatch log group of the worker tasks."
  value       = aws_cloudwatch_log_group.worker.name
}
