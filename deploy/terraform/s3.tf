# S3 batches: the batch worker reads inputs and writes results under the
# buckets and prefixes of var.s3_batch_locations, and nowhere else. The same
# list is HOKUSAI_S3_ALLOW of the API (which checks at submission) and of the
# workers (which check again before each read or write), so IAM and the
# allow-list agree. Tenants' own entries (hokusai s3 allow) must fall inside
# it for their batches to get through IAM.

locals {
  s3_batches = length(var.s3_batch_locations) > 0
  # HOKUSAI_S3_ALLOW: s3://bucket[/prefix], comma-separated.
  s3_allow = join(",", formatlist("s3://%s", var.s3_batch_locations))
  # The objects under each location.
  s3_batch_objects = formatlist("arn:aws:s3:::%s/*", var.s3_batch_locations)
  # What reading an input and writing a results file takes: HeadObject and
  # ranged GETs (s3:GetObject); PutObject and the multipart uploads' create,
  # parts and complete (s3:PutObject); abort on cancel or failure; listing
  # an upload's parts when a resumed run recognises a completed upload.
  s3_batch_actions = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
  ]
}

# The batch worker's task role: S3 only, and only there. The sync/async
# worker and the API run without a task role.
resource "aws_iam_role" "batch_worker_task" {
  name               = "${var.name}-batch-worker-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "s3_batches" {
  statement {
    sid       = "ReadInputsWriteResults"
    actions   = local.s3_batch_actions
    resources = local.s3_batch_objects
  }
}

resource "aws_iam_role_policy" "batch_worker_s3" {
  count  = local.s3_batches ? 1 : 0
  name   = "s3-batches"
  role   = aws_iam_role.batch_worker_task.name
  policy = data.aws_iam_policy_document.s3_batches.json
}

# The buckets' side. A bucket in another account (the lead pipeline's) must
# also grant the role in its own policy: the s3_bucket_policy_statement
# output is that statement. For buckets this deployment owns outright, set
# s3_manage_bucket_policies and each gets a policy of that grant plus a
# refusal of plain-HTTP requests; it replaces any policy the bucket had.
resource "aws_s3_bucket_policy" "batches" {
  for_each = var.s3_manage_bucket_policies ? toset([for loc in var.s3_batch_locations : split("/", loc)[0]]) : toset([])

  bucket = each.key
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "HokusaiBatchWorker"
        Effect    = "Allow"
        Principal = { AWS = aws_iam_role.batch_worker_task.arn }
        Action    = local.s3_batch_actions
        Resource  = [for loc in var.s3_batch_locations : "arn:aws:s3:::${loc}/*" if split("/", loc)[0] == each.key]
      },
      {
        Sid       = "TLSOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = ["arn:aws:s3:::${each.key}", "arn:aws:s3:::${each.key}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}
