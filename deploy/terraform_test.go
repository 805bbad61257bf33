package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

const terraformDir = "terraform"

func terraformSources(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := readTerraform(terraformDir)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestTerraformHoldsDeployRules(t *testing.T) {
	t.Parallel()
	m, err := parseModule(terraformSources(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range checkTerraform(m) {
		t.Error(f)
	}
}

// tfMutation edits a copy of the Terraform sources; it fails the test when
// its edit no longer applies, so a renamed block cannot turn a case into a
// silent pass.
type tfMutation func(t *testing.T, files map[string][]byte)

// replaceIn replaces old (which must occur exactly once) in file.
func replaceIn(file, old, new string) tfMutation {
	return func(t *testing.T, files map[string][]byte) {
		t.Helper()
		if n := bytes.Count(files[file], []byte(old)); n != 1 {
			t.Fatalf("mutation: %q occurs %d times in %s, want 1", old, n, file)
		}
		files[file] = bytes.Replace(files[file], []byte(old), []byte(new), 1)
	}
}

// addFile adds a new .tf file to the configuration.
func addFile(src string) tfMutation {
	return func(t *testing.T, files map[string][]byte) {
		files["mutation.tf"] = []byte(src)
	}
}

// removeBlock deletes the block with the given labels ("resource",
// "aws_lb_listener_rule", "api") from file.
func removeBlock(file, typ string, labels ...string) tfMutation {
	return func(t *testing.T, files map[string][]byte) {
		t.Helper()
		f := parseWritable(t, file, files[file])
		b := f.Body().FirstMatchingBlock(typ, labels)
		if b == nil || !f.Body().RemoveBlock(b) {
			t.Fatalf("mutation: no %s %v in %s", typ, labels, file)
		}
		files[file] = f.Bytes()
	}
}

// setAttribute sets attribute name of the block with the given labels to
// the expression src.
func setAttribute(file, typ string, labels []string, name, src string) tfMutation {
	return func(t *testing.T, files map[string][]byte) {
		t.Helper()
		f := parseWritable(t, file, files[file])
		b := f.Body().FirstMatchingBlock(typ, labels)
		if b == nil || b.Body().GetAttribute(name) == nil {
			t.Fatalf("mutation: no %s in %s %v in %s", name, typ, labels, file)
		}
		expr := parseWritable(t, "expr.tf", []byte("x = "+src+"\n")).Body().GetAttribute("x").Expr()
		b.Body().SetAttributeRaw(name, expr.BuildTokens(nil))
		files[file] = f.Bytes()
	}
}

func parseWritable(t *testing.T, name string, src []byte) *hclwrite.File {
	t.Helper()
	f, diags := hclwrite.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f
}

// TestTerraformChecksCatchRegressions proves each rule can fail: every case
// breaks a copy of the configuration the way an outage (or a plausible
// edit) would, and the checker must name the break.
func TestTerraformChecksCatchRegressions(t *testing.T) {
	t.Parallel()
	httpsRule := []string{"aws_lb_listener_rule", "api"}
	cases := []struct {
		name   string
		mutate tfMutation
		want   string // a finding must contain this
	}{
		{
			name:   "batch shares the sync service",
			mutate: replaceIn("worker.tf", `lanes  = "batch"`, `lanes  = "sync,batch"`),
			want:   "worker service batch-worker consumes batch with [sync batch]: batch needs a service of its own",
		},
		{
			name:   "no service takes async",
			mutate: replaceIn("worker.tf", `lanes  = "sync,async"`, `lanes  = "sync"`),
			want:   "no worker service consumes the async lane",
		},
		{
			name:   "worker container ignores its service's lanes",
			mutate: replaceIn("worker.tf", "      { name = \"HOKUSAI_LANES\", value = each.value.lanes },\n", ""),
			want:   `container "worker" must set HOKUSAI_LANES to each.value.lanes`,
		},
		{
			name:   "one worker service again",
			mutate: replaceIn("worker.tf", "  for_each = local.worker_services\n\n  family", "  family"),
			want:   "needs a for_each of worker services",
		},
		{
			name:   "HTTPS listener loses the /api/* rule",
			mutate: removeBlock("alb.tf", "resource", httpsRule...),
			want:   `forwarding path pattern "/api/*"`,
		},
		{
			name:   "/api/* rule sits on the HTTP listener only (the 404 outage)",
			mutate: setAttribute("alb.tf", "resource", httpsRule, "listener_arn", "aws_lb_listener.http.arn"),
			want:   `forwarding path pattern "/api/*"`,
		},
		{
			name:   "meta rule drops /openapi.json",
			mutate: replaceIn("alb.tf", `"/openapi.json", `, ""),
			want:   `forwarding path pattern "/openapi.json"`,
		},
		{
			name:   "meta rule drops /docs/* (the reference's own assets)",
			mutate: replaceIn("alb.tf", `, "/docs/*"`, ""),
			want:   `forwarding path pattern "/docs/*"`,
		},
		{
			name:   "/api/* rule narrowed to one host",
			mutate: replaceIn("alb.tf", "      values = [\"/api/*\"]\n    }\n", "      values = [\"/api/*\"]\n    }\n    host_header {\n      values = [\"internal.example\"]\n    }\n"),
			want:   `forwarding path pattern "/api/*"`,
		},
		{
			name:   "HTTP listener forwards instead of redirecting",
			mutate: replaceIn("alb.tf", "    type = \"redirect\"\n", "    type             = \"forward\"\n    target_group_arn = aws_lb_target_group.api.arn\n"),
			want:   `must only redirect to HTTPS, but its default action is "forward"`,
		},
		{
			name:   "a rule on the HTTP listener forwards",
			mutate: addFile("resource \"aws_lb_listener_rule\" \"http_api\" {\n  listener_arn = aws_lb_listener.http.arn\n  action {\n    type             = \"forward\"\n    target_group_arn = aws_lb_target_group.api.arn\n  }\n  condition {\n    path_pattern {\n      values = [\"/api/*\"]\n    }\n  }\n}\n"),
			want:   "aws_lb_listener_rule.http_api is attached to aws_lb_listener.http",
		},
		{
			name:   "HTTP listener redirects with 302",
			mutate: replaceIn("alb.tf", `"HTTP_301"`, `"HTTP_302"`),
			want:   `status "HTTP_302"`,
		},
		{
			name:   "HTTPS default action answers text/plain",
			mutate: replaceIn("alb.tf", `content_type = "application/json"`, `content_type = "text/plain"`),
			want:   `content type "text/plain"`,
		},
		{
			name:   "HTTPS default action body is not JSON",
			mutate: replaceIn("alb.tf", `jsonencode({ code = "not_found", detail = "No route" })`, `"Not Found"`),
			want:   `body "Not Found" is not a JSON error object`,
		},
		{
			name:   "target group checks liveness instead of readiness",
			mutate: replaceIn("alb.tf", `path                = "/ready"`, `path                = "/health"`),
			want:   `health check path is "/health"`,
		},
		{
			name:   "API task gets HF_TOKEN as a secret (the 500 outage, inverted)",
			mutate: replaceIn("api.tf", "secrets          = [local.redis_url_secret]", "secrets = [local.redis_url_secret, { name = \"HF_TOKEN\", valueFrom = var.hf_token_secret_arn }]"),
			want:   "aws_ecs_task_definition.api (used by aws_ecs_task_definition.api) names the HuggingFace token",
		},
		{
			name:   "API task gets HUGGINGFACE_API_KEY in plain environment",
			mutate: replaceIn("api.tf", `{ name = "HOKUSAI_LISTEN", value = ":${local.api_port}" },`, `{ name = "HUGGINGFACE_API_KEY", value = "hf_x" },`),
			want:   `names the HuggingFace token: "HUGGINGFACE_API_KEY"`,
		},
		{
			name:   "API task reaches the token through a local",
			mutate: replaceIn("ecs.tf", `redis_url_secret = { name = "REDIS_URL", valueFrom = aws_ssm_parameter.redis_url.arn }`, `redis_url_secret = { name = "REDIS_URL", valueFrom = var.hf_token_secret_arn }`),
			want:   `names the HuggingFace token: "var.hf_token_secret_arn"`,
		},
		{
			name:   "API execution role may read a Secrets Manager secret",
			mutate: addFile("resource \"aws_iam_role_policy\" \"api_redis\" {\n  role   = aws_iam_role.api_execution.name\n  policy = jsonencode({ Version = \"2012-10-17\", Statement = [{ Effect = \"Allow\", Action = \"secretsmanager:GetSecretValue\", Resource = var.redis_auth_token_secret_arn }] })\n}\n"),
			want:   `aws_iam_role.api_execution (role of aws_ecs_task_definition.api) must have no Secrets Manager permission, but aws_iam_role_policy.api_redis allows "secretsmanager:GetSecretValue"`,
		},
		{
			name:   "API execution role allows every action",
			mutate: addFile("resource \"aws_iam_role_policy\" \"api_all\" {\n  role   = aws_iam_role.api_execution.id\n  policy = jsonencode({ Statement = [{ Effect = \"Allow\", Action = [\"*\"], Resource = [\"*\"] }] })\n}\n"),
			want:   `aws_iam_role_policy.api_all allows "*"`,
		},
		{
			name:   "API execution role gets a managed Secrets Manager policy",
			mutate: addFile("resource \"aws_iam_role_policy_attachment\" \"api_sm\" {\n  role       = aws_iam_role.api_execution.name\n  policy_arn = \"arn:aws:iam::aws:policy/SecretsManagerReadWrite\"\n}\n"),
			want:   `carries managed policy "arn:aws:iam::aws:policy/SecretsManagerReadWrite"`,
		},
		{
			name:   "shared execution policy grows a Secrets Manager statement",
			mutate: replaceIn("ecs.tf", `actions   = ["ssm:GetParameters"]`, `actions   = ["ssm:GetParameters", "secretsmanager:GetSecretValue"]`),
			want:   `data.aws_iam_policy_document.read_redis_url allows "secretsmanager:GetSecretValue"`,
		},
		{
			name:   "worker task loses the token secret",
			mutate: replaceIn("worker.tf", "      { name = \"HF_TOKEN\", valueFrom = var.hf_token_secret_arn },\n", ""),
			want:   "has no HF_TOKEN secret whose valueFrom is the Secrets Manager ARN",
		},
		{
			name:   "worker token secret points at a literal instead of the ARN",
			mutate: replaceIn("worker.tf", `valueFrom = var.hf_token_secret_arn`, `valueFrom = "hokusai/hf-token"`),
			want:   "has no HF_TOKEN secret whose valueFrom is the Secrets Manager ARN",
		},
		{
			name:   "worker token in plain environment",
			mutate: replaceIn("worker.tf", `{ name = "HF_HOME", value = "/var/cache/hokusai" },`, `{ name = "HF_TOKEN", value = "hf_x" },`),
			want:   "sets HF_TOKEN in plain environment",
		},
		{
			name:   "secret policy widened to *",
			mutate: replaceIn("worker.tf", `resources = [var.hf_token_secret_arn]`, `resources = ["*"]`),
			want:   "grants Secrets Manager wider than GetSecretValue on var.hf_token_secret_arn",
		},
		{
			name:   "secret policy widened by a wildcard suffix",
			mutate: replaceIn("worker.tf", `resources = [var.hf_token_secret_arn]`, `resources = ["${var.hf_token_secret_arn}*"]`),
			want:   "resources [var.hf_token_secret_arn*]",
		},
		{
			name:   "secret policy covers a second secret",
			mutate: replaceIn("worker.tf", `resources = [var.hf_token_secret_arn]`, `resources = [var.hf_token_secret_arn, var.redis_auth_token_secret_arn]`),
			want:   "grants Secrets Manager wider than GetSecretValue",
		},
		{
			name:   "secret policy allows every Secrets Manager action",
			mutate: replaceIn("worker.tf", `actions   = ["secretsmanager:GetSecretValue"]`, `actions   = ["secretsmanager:*"]`),
			want:   "actions [secretsmanager:*]",
		},
		{
			name:   "worker role reads secrets through a second policy",
			mutate: addFile("resource \"aws_iam_role_policy\" \"worker_more\" {\n  role   = aws_iam_role.worker_execution.name\n  policy = jsonencode({ Statement = { Effect = \"Allow\", Action = \"secretsmanager:GetSecretValue\", Resource = \"*\" } })\n}\n"),
			want:   "aws_iam_role_policy.worker_more (role of aws_ecs_task_definition.worker) grants Secrets Manager wider",
		},
		{
			name:   "worker health check probes liveness",
			mutate: replaceIn("worker.tf", "http://127.0.0.1:8081/readyz", "http://127.0.0.1:8081/livez"),
			want:   "must health-check readiness",
		},
		{
			name:   "Redis without TLS in transit",
			mutate: replaceIn("redis.tf", "transit_encryption_enabled = true", "transit_encryption_enabled = false"),
			want:   "must set transit_encryption_enabled = true",
		},
		{
			name:   "the batch worker may write anywhere in S3",
			mutate: replaceIn("s3.tf", "resources = local.s3_batch_objects", `resources = ["*"]`),
			want:   "grants S3 wider than",
		},
		{
			name:   "the batch worker may delete",
			mutate: replaceIn("s3.tf", `"s3:AbortMultipartUpload",`, `"s3:AbortMultipartUpload", "s3:DeleteObject",`),
			want:   "grants S3 wider than",
		},
		{
			name:   "the API gets the S3 role",
			mutate: replaceIn("api.tf", "  execution_role_arn", "  task_role_arn            = aws_iam_role.batch_worker_task.arn\n  execution_role_arn"),
			want:   "only the batch worker reads and writes S3",
		},
		{
			name:   "an undocumented variable",
			mutate: addFile("variable \"x\" {\n  type = string\n}\n"),
			want:   "var.x has no description",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files := terraformSources(t)
			tc.mutate(t, files)
			m, err := parseModule(files)
			if err != nil {
				t.Fatalf("mutated configuration does not parse: %v", err)
			}
			got := checkTerraform(m)
			for _, f := range got {
				if strings.Contains(f, tc.want) {
					return
				}
			}
			t.Errorf("no finding contains %q; findings:\n%s", tc.want, strings.Join(got, "\n"))
		})
	}
}

// TestTerraformFmt runs the real formatter where CI has it.
func TestTerraformFmt(t *testing.T) {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("NOTICE: terraform is not on PATH; `terraform fmt -check -recursive deploy/terraform` was not run (TestTerraformCanonicalLayout still checks HCL layout)")
	}
	out, err := exec.Command(bin, "fmt", "-check", "-recursive", "-diff", terraformDir).CombinedOutput()
	if err != nil {
		t.Fatalf("terraform fmt -check -recursive %s: %v\n%s", terraformDir, err, out)
	}
}

// TestTerraformCanonicalLayout checks every .tf file against the HCL
// formatter terraform fmt is built on, so layout drift shows up even where
// terraform is not installed.
func TestTerraformCanonicalLayout(t *testing.T) {
	t.Parallel()
	for name, src := range terraformSources(t) {
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			t.Errorf("%s is not in canonical HCL layout (run terraform fmt); formatted:\n%s", name, got)
		}
	}
}

// TestTerraformREADMEDocumentsInterface: the README's tables list every
// variable and output.
func TestTerraformREADMEDocumentsInterface(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join(terraformDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseModule(terraformSources(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range append(m.ofType("var."), m.ofType("output.")...) {
		name := addr[strings.IndexByte(addr, '.')+1:]
		row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(name) + "` \\|")
		if !row.Match(readme) {
			t.Errorf("%s/README.md has no table row for %s", terraformDir, addr)
		}
	}
}
