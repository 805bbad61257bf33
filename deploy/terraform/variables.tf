variable "name" {
  description = "Prefix for every resource name (cluster, services, load balancer, Redis, log groups)."
  type        = string
  default     = "hokusai"
}

variable "aws_region" {
  description = "AWS region to deploy into; also the region the awslogs driver writes to."
  type        = string
}

variable "tags" {
  description = "Extra tags applied to every resource through the provider's default_tags."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "VPC that holds the load balancer, the tasks and Redis."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets for the internet-facing load balancer (at least two AZs)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets for the ECS tasks and the Redis nodes (at least two AZs). They need a NAT gateway or VPC endpoints so tasks can reach ECR, CloudWatch Logs, SSM, Secrets Manager and the HuggingFace Hub."
  type        = list(string)
}

variable "alb_ingress_cidrs" {
  description = "IPv4 ranges allowed to reach the load balancer on ports 80 and 443."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "certificate_arn" {
  description = "ACM certificate ARN served by the HTTPS listener (the API's public host name)."
  type        = string
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener; the default accepts TLS 1.3 and 1.2 only."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "api_image" {
  description = "Image of the API tier, built from deploy/api.Dockerfile (tag or digest)."
  type        = string
}

variable "worker_image" {
  description = "Image of the worker tier, built from deploy/worker.Dockerfile (tag or digest)."
  type        = string
}

variable "hf_token_secret_arn" {
  description = "Full ARN of the Secrets Manager secret holding the HuggingFace token. Only the worker's execution role may read it, and only this one ARN."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[^*?]+$", var.hf_token_secret_arn))
    error_message = "hf_token_secret_arn must be the full ARN of one Secrets Manager secret, without wildcards."
  }
}

variable "redis_auth_token_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the Redis AUTH token (16-128 characters). Terraform reads it at plan time to configure ElastiCache and the SSM parameter the tasks read; no task role can read it."
  type        = string
}

variable "redis_node_type" {
  description = "ElastiCache node type of the two Redis nodes."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_engine_version" {
  description = "Redis engine version of the replication group."
  type        = string
  default     = "7.1"
}

variable "api_desired_count" {
  description = "Number of API tasks behind the load balancer."
  type        = number
  default     = 2
}

variable "api_cpu" {
  description = "CPU units of one API task (1024 = 1 vCPU)."
  type        = number
  default     = 512
}

variable "api_memory" {
  description = "Memory of one API task, in MiB."
  type        = number
  default     = 1024
}

variable "api_gomaxprocs" {
  description = "GOMAXPROCS of the API process: its task's vCPUs, at least 1 (Go itself runs at least 2, which on a smaller task only spins idle threads)."
  type        = number
  default     = 1

  validation {
    condition     = var.api_gomaxprocs >= 1
    error_message = "api_gomaxprocs must be at least 1."
  }
}

variable "worker_pool" {
  description = "Pool both worker services consume (HOKUSAI_POOL); also the Pool dimension of the backlog metric."
  type        = string
  default     = "default"
}

variable "worker_cpu" {
  description = "CPU units of one sync/async worker task (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "worker_memory" {
  description = "Memory of one worker task, in MiB; must hold the pool's models."
  type        = number
  default     = 2048
}

variable "worker_gomaxprocs" {
  description = "GOMAXPROCS of a sync/async worker: its task's vCPUs (worker_cpu / 1024), at least 1."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_gomaxprocs >= 1
    error_message = "worker_gomaxprocs must be at least 1."
  }
}

variable "worker_min_count" {
  description = "Fewest worker tasks autoscaling keeps running (at least 1, so sync calls always find a ready worker)."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_min_count >= 1
    error_message = "worker_min_count must be at least 1."
  }
}

variable "worker_max_count" {
  description = "Most worker tasks autoscaling may run."
  type        = number
  default     = 10
}

variable "worker_backlog_per_task_target" {
  description = "Target of the sync/async service's scaling policy: queued sync and async jobs of the pool per running worker task."
  type        = number
  default     = 50
}

variable "batch_worker_cpu" {
  description = "CPU units of one batch worker task (HOKUSAI_LANES=batch; 2048 = 2 vCPU, scored in parallel)."
  type        = number
  default     = 2048
}

variable "batch_worker_memory" {
  description = "Memory of one batch worker task, in MiB; must hold the pool's models and a few chunks."
  type        = number
  default     = 4096
}

variable "batch_worker_gomaxprocs" {
  description = "GOMAXPROCS of a batch worker: its task's vCPUs (batch_worker_cpu / 1024), at least 1."
  type        = number
  default     = 2

  validation {
    condition     = var.batch_worker_gomaxprocs >= 1
    error_message = "batch_worker_gomaxprocs must be at least 1."
  }
}

variable "batch_worker_min_count" {
  description = "Fewest batch worker tasks autoscaling keeps running (at least 1: the API refuses batches while none is ready)."
  type        = number
  default     = 1

  validation {
    condition     = var.batch_worker_min_count >= 1
    error_message = "batch_worker_min_count must be at least 1."
  }
}

variable "batch_worker_max_count" {
  description = "Most batch worker tasks autoscaling may run."
  type        = number
  default     = 4
}

variable "batch_worker_cpu_target" {
  description = "Target of the batch service's scaling policy: average CPU utilization of its tasks, in percent."
  type        = number
  default     = 70
}

variable "worker_stop_timeout" {
  description = "Seconds ECS waits after SIGTERM before killing a worker, so it can finish or hand back in-flight jobs (Fargate allows at most 120)."
  type        = number
  default     = 120

  validation {
    condition     = var.worker_stop_timeout >= 2 && var.worker_stop_timeout <= 120
    error_message = "worker_stop_timeout must be between 2 and 120 seconds."
  }
}

variable "s3_batch_locations" {
  description = "Where S3 batches may read and write: bucket or bucket/prefix entries (no s3://). They become HOKUSAI_S3_ALLOW of the API and the workers, and the batch worker's task role may GetObject, PutObject, AbortMultipartUpload and ListMultipartUploadParts under them and nowhere else. Empty: no S3 batches."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for loc in var.s3_batch_locations : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^*?]*[^/*?])?$", loc))])
    error_message = "Each s3_batch_locations entry is a bucket name, optionally /prefix, without s3://, a trailing slash or wildcards."
  }
}

variable "s3_manage_bucket_policies" {
  description = "Write each s3_batch_locations bucket's policy (the batch worker's grant and a refusal of plain HTTP), replacing any it had. Only for buckets this deployment owns outright; otherwise add the s3_bucket_policy_statement output to the bucket's own policy."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the API and worker logs."
  type        = number
  default     = 30
}
