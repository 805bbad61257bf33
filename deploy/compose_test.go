package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/hokusai-ai/inference-queue/internal/registry"
)

const (
	composeFile = "../docker-compose.yml"
	// tokenServices are the compose services that may see the HF token:
	// the workers (sync/async, and batch).
	tokenServices = "worker batch-worker"
	// tokenSecret is the compose secret holding the HF token.
	tokenSecret = "hf_token"
)

// loadCompose loads compose source the way `docker compose` would, from a
// temporary project directory holding an empty secrets/hf_token (as the
// demo setup creates), with no environment from the host, and the
// profiles given.
func loadCompose(t *testing.T, src []byte, profiles ...string) *types.Project {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"docker-compose.yml": src, "secrets/hf_token": nil} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir), cli.WithName("hokusai"), cli.WithEnv(nil), cli.WithProfiles(profiles))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load compose: %v", err)
	}
	return p
}

func registrySpecs(t *testing.T) []registry.Spec {
	t.Helper()
	f, err := os.Open("registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	specs, err := registry.Parse(f)
	if err != nil {
		t.Fatalf("registry.yaml: %v", err)
	}
	return specs
}

// checkCompose returns every way the compose project breaks the rules.
func checkCompose(p *types.Project, models []registry.Spec) []string {
	var c findings
	checkComposeToken(p, &c)
	checkComposeHealth(p, &c)
	checkComposeRedis(p, &c)
	checkComposeModels(p, models, &c)
	checkComposeLanes(p, &c)
	checkComposeBatchWeight(p, &c)
	return c.list
}

// checkComposeLanes: the worker services together consume every lane, so
// no kind of work is accepted and never run.
func checkComposeLanes(p *types.Project, c *findings) {
	covered := map[string]bool{}
	for _, name := range strings.Fields(tokenServices) {
		svc, ok := p.Services[name]
		if !ok {
			continue // checkComposeModels reports it
		}
		for _, l := range serviceLanes(svc) {
			covered[l] = true
		}
	}
	for _, lane := range []string{"sync", "async", "batch"} {
		if !covered[lane] {
			c.add("no worker service consumes the %s lane", lane)
		}
	}
}

// batchShares is the most CPU weight a batch-only service may have: its
// idle-class threads rank only against their own container, so the
// container itself must give way to the services partners wait on.
const batchShares = 16

// checkComposeBatchWeight: any service that consumes only the batch lane
// runs with a low CPU weight.
func checkComposeBatchWeight(p *types.Project, c *findings) {
	for _, name := range sortedKeys(p.Services) {
		svc := p.Services[name]
		if !slices.Equal(serviceLanes(svc), []string{"batch"}) {
			continue
		}
		if svc.CPUShares == 0 || svc.CPUShares > batchShares {
			c.add("batch-only service %s has cpu_shares %d; give it at most %d so sync work goes first", name, svc.CPUShares, batchShares)
		}
	}
}

// serviceLanes is the set of lanes a worker service consumes, sorted, as
// the worker reads them: --lanes (or --lanes=) over HOKUSAI_LANES over the
// default, comma-separated, blanks ignored.
func serviceLanes(svc types.ServiceConfig) []string {
	lanes := "sync,async,batch" // the worker's default
	if v := svc.Environment["HOKUSAI_LANES"]; v != nil {
		lanes = *v
	}
	for i, arg := range svc.Command {
		if v, ok := strings.CutPrefix(arg, "--lanes="); ok {
			lanes = v
		} else if arg == "--lanes" && i+1 < len(svc.Command) {
			lanes = svc.Command[i+1]
		}
	}
	var set []string
	for _, l := range strings.Split(lanes, ",") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(set, l) {
			set = append(set, l)
		}
	}
	slices.Sort(set)
	return set
}

// checkComposeToken: only the workers get the token, and only as the secret.
func checkComposeToken(p *types.Project, c *findings) {
	tokenFiles := map[string]bool{}
	for name, s := range p.Secrets {
		if name == tokenSecret && s.File != "" {
			tokenFiles[s.File] = true
		}
	}
	for name, cfg := range p.Configs {
		if namesHFToken(name) && cfg.File != "" {
			tokenFiles[cfg.File] = true
		}
	}
	for _, name := range sortedKeys(p.Services) {
		svc := p.Services[name]
		if slices.Contains(strings.Fields(tokenServices), name) {
			if !slices.ContainsFunc(svc.Secrets, func(s types.ServiceSecretConfig) bool { return s.Source == tokenSecret }) {
				c.add("service %s lacks the %s secret", name, tokenSecret)
			}
			for key, value := range svc.Environment {
				if namesHFToken(key) && key != "HF_TOKEN_FILE" && value != nil {
					c.add("service %s sets %s in its environment; pass the token as the %s secret", name, key, tokenSecret)
				}
			}
			continue
		}
		for _, s := range svc.Secrets {
			if s.Source == tokenSecret || namesHFToken(s.Source) || namesHFToken(s.Target) {
				c.add("service %s receives secret %s; the HF token belongs to %s only", name, s.Source, tokenServices)
			}
		}
		for _, cfg := range svc.Configs {
			if tokenFiles[p.Configs[cfg.Source].File] || namesHFToken(cfg.Source) {
				c.add("service %s receives config %s holding the HF token", name, cfg.Source)
			}
		}
		for key := range svc.Environment {
			if namesHFToken(key) {
				c.add("service %s has %s in its environment; the HF token belongs to %s only", name, key, tokenServices)
			}
		}
		for _, v := range svc.Volumes {
			for file := range tokenFiles {
				if v.Type == types.VolumeTypeBind && (file == v.Source || strings.HasPrefix(file, v.Source+string(filepath.Separator))) {
					c.add("service %s mounts %s, which holds the HF token file", name, v.Source)
				}
			}
		}
	}
}

// checkComposeHealth: every long-running service has a healthcheck, and
// every dependency waits for health (or for a one-shot to complete).
func checkComposeHealth(p *types.Project, c *findings) {
	oneShot := map[string]bool{}
	for _, svc := range p.Services {
		for dep, d := range svc.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				oneShot[dep] = true
			}
		}
	}
	for _, name := range sortedKeys(p.Services) {
		svc := p.Services[name]
		for _, dep := range sortedKeys(svc.DependsOn) {
			if cond := svc.DependsOn[dep].Condition; cond != types.ServiceConditionHealthy && cond != types.ServiceConditionCompletedSuccessfully {
				c.add("service %s depends on %s with condition %q; wait for service_healthy (or service_completed_successfully for a one-shot)", name, dep, cond)
			}
		}
		if oneShot[name] {
			continue
		}
		hc := svc.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
			c.add("long-running service %s has no healthcheck", name)
		}
	}
}

// checkComposeRedis: Redis keeps an append-only file on a named volume, so
// queued jobs survive a restart.
func checkComposeRedis(p *types.Project, c *findings) {
	found := false
	for _, name := range sortedKeys(p.Services) {
		svc := p.Services[name]
		if !strings.HasPrefix(svc.Image, "redis:") {
			continue
		}
		found = true
		if i := slices.Index(svc.Command, "--appendonly"); i < 0 || i+1 == len(svc.Command) || svc.Command[i+1] != "yes" {
			c.add("redis service %s runs %q without --appendonly yes", name, strings.Join(svc.Command, " "))
		}
		if !slices.ContainsFunc(svc.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Type == types.VolumeTypeVolume && v.Target == "/data" }) {
			c.add("redis service %s keeps /data on no named volume", name)
		}
	}
	if !found {
		c.add("no service runs a redis: image")
	}
}

// checkComposeModels: every file:// model of the registry seed is inside a
// read-only mount of the worker.
func checkComposeModels(p *types.Project, models []registry.Spec, c *findings) {
	for _, name := range strings.Fields(tokenServices) {
		worker, ok := p.Services[name]
		if !ok {
			c.add("there is no %s service", name)
			continue
		}
		for _, m := range models {
			path, isFile := strings.CutPrefix(m.Source, "file://")
			if !isFile {
				continue
			}
			if !slices.ContainsFunc(worker.Volumes, func(v types.ServiceVolumeConfig) bool {
				return v.ReadOnly && (path == v.Target || strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/"))
			}) {
				c.add("model %s (%s) is not inside a read-only mount of service %s", m.ID, m.Source, name)
			}
		}
	}
}

func TestComposeHoldsDeployRules(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range checkCompose(loadCompose(t, src), registrySpecs(t)) {
		t.Error(f)
	}
}

// The s3 profile adds a MinIO and its bucket, and the batch worker waits
// for the bucket and reaches the store through the SDK's own variables;
// the project holds the deploy rules with it as without it, and without it
// runs no MinIO and requires none.
func TestComposeS3Profile(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, src, "s3")
	for _, f := range checkCompose(p, registrySpecs(t)) {
		t.Error(f)
	}
	bw, ok := p.Services["batch-worker"]
	if _, minio := p.Services["minio"]; !ok || !minio {
		t.Fatal("the s3 profile has no minio or no batch-worker")
	}
	if _, waits := bw.DependsOn["minio-init"]; !waits {
		t.Error("batch-worker does not wait for the bucket (minio-init)")
	}
	for _, k := range []string{"HOKUSAI_S3_ALLOW", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if _, set := bw.Environment[k]; !set {
			t.Errorf("batch-worker lacks %s", k)
		}
	}
	if _, set := p.Services["api"].Environment["HOKUSAI_S3_ALLOW"]; !set {
		t.Error("api lacks HOKUSAI_S3_ALLOW")
	}
	plain := loadCompose(t, src)
	if _, minio := plain.Services["minio"]; minio {
		t.Error("minio runs without the s3 profile")
	}
	if d, waits := plain.Services["batch-worker"].DependsOn["minio-init"]; waits && d.Required {
		t.Error("without the s3 profile, batch-worker still requires minio-init")
	}
}

// composeEdit changes one service of the decoded compose document.
type composeEdit func(services map[string]any) error

func service(services map[string]any, name string) (map[string]any, error) {
	svc, ok := services[name].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no service %s", name)
	}
	return svc, nil
}

// setKey sets key of service name to value.
func setKey(name, key string, value any) composeEdit {
	return func(services map[string]any) error {
		svc, err := service(services, name)
		if err != nil {
			return err
		}
		svc[key] = value
		return nil
	}
}

// deleteKey removes key (which must exist) from service name.
func deleteKey(name, key string) composeEdit {
	return func(services map[string]any) error {
		svc, err := service(services, name)
		if err != nil {
			return err
		}
		if _, ok := svc[key]; !ok {
			return fmt.Errorf("service %s has no %s", name, key)
		}
		delete(svc, key)
		return nil
	}
}

// setEnv sets one environment variable of service name.
func setEnv(name, key, value string) composeEdit {
	return func(services map[string]any) error {
		svc, err := service(services, name)
		if err != nil {
			return err
		}
		env, ok := svc["environment"].(map[string]any)
		if !ok {
			return fmt.Errorf("service %s has no environment map", name)
		}
		env[key] = value
		return nil
	}
}

func TestComposeChecksCatchRegressions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		edit composeEdit
		want string
	}{
		{"api receives the hf_token secret", setKey("api", "secrets", []any{"hf_token"}), "service api receives secret hf_token"},
		{"init gets HF_TOKEN", setEnv("init", "HF_TOKEN", "hf_x"), "service init has HF_TOKEN in its environment"},
		{"api gets HUGGINGFACE_API_KEY", setEnv("api", "HUGGINGFACE_API_KEY", "hf_x"), "service api has HUGGINGFACE_API_KEY"},
		{"api gets HF_TOKEN_FILE", setEnv("api", "HF_TOKEN_FILE", "/run/secrets/hf_token"), "service api has HF_TOKEN_FILE"},
		{"api mounts the secrets folder", setKey("api", "volumes", []any{"./secrets:/secrets:ro"}), "service api mounts"},
		{"worker takes the token from plain env", setEnv("worker", "HF_TOKEN", "hf_x"), "service worker sets HF_TOKEN in its environment"},
		{"worker loses the secret", deleteKey("worker", "secrets"), "service worker lacks the hf_token secret"},
		{"api loses its healthcheck", deleteKey("api", "healthcheck"), "long-running service api has no healthcheck"},
		{"worker healthcheck disabled", setKey("worker", "healthcheck", map[string]any{"disable": true}), "long-running service worker has no healthcheck"},
		{"redis loses its healthcheck", deleteKey("redis", "healthcheck"), "long-running service redis has no healthcheck"},
		{"redis without AOF", setKey("redis", "command", []any{"redis-server"}), "without --appendonly yes"},
		{"redis AOF off", setKey("redis", "command", "redis-server --appendonly no"), "without --appendonly yes"},
		{"redis data on no volume", deleteKey("redis", "volumes"), "keeps /data on no named volume"},
		{"worker starts before redis is healthy", setKey("worker", "depends_on", []any{"redis", "init"}), `depends on redis with condition "service_started"`},
		{"demo model not mounted", deleteKey("worker", "volumes"), "model 21 (file:///models/sales-lead-scoring) is not inside a read-only mount"},
		{"demo model mounted writable", setKey("worker", "volumes", []any{"./models:/models"}), "is not inside a read-only mount"},
		{"batch lane left out", setKey("batch-worker", "command", []any{"--lanes", "async"}), "no worker service consumes the batch lane"},
		{"batch worker loses the secret", deleteKey("batch-worker", "secrets"), "service batch-worker lacks the hf_token secret"},
		{"batch worker at full CPU weight", deleteKey("batch-worker", "cpu_shares"), "batch-only service batch-worker has cpu_shares 0"},
		{"batch worker at a high CPU weight", setKey("batch-worker", "cpu_shares", 512), "batch-only service batch-worker has cpu_shares 512"},
		{"second batch service at full weight", setKey("worker", "command", []any{"--lanes= batch"}), "batch-only service worker has cpu_shares 0"},
	}
	src, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	models := registrySpecs(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var doc map[string]any
			if err := yaml.Unmarshal(src, &doc); err != nil {
				t.Fatal(err)
			}
			services, _ := doc["services"].(map[string]any)
			if err := tc.edit(services); err != nil {
				t.Fatalf("mutation: %v", err)
			}
			mutated, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			got := checkCompose(loadCompose(t, mutated), models)
			for _, f := range got {
				if strings.Contains(f, tc.want) {
					return
				}
			}
			t.Errorf("no finding contains %q; findings:\n%s", tc.want, strings.Join(got, "\n"))
		})
	}
}
