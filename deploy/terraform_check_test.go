package deploy

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Addresses the checks anchor on. The worker task definition is the only
// one allowed near the HuggingFace token; every other task definition is
// held to the API's rules.
const (
	workerTaskDef = "aws_ecs_task_definition.worker"
	apiService    = "aws_ecs_service.api"
)

// apiPublicPaths are the path patterns the HTTPS listener must forward to
// the API target group (the 404 outage: /api/* was missing on HTTPS);
// /docs/* holds the files /docs loads, which the API serves itself.
var apiPublicPaths = []string{"/api/*", "/health", "/ready", "/openapi.json", "/docs", "/docs/*"}

// checkTerraform returns every way the configuration breaks the deployment
// rules, one sentence each; nil means it holds.
func checkTerraform(m *tfModule) []string {
	var c findings
	c.run(func() error { return checkTaskDefinitionsOffToken(m, &c) })
	c.run(func() error { return checkWorkerToken(m, &c) })
	c.run(func() error { return checkWorkerLanes(m, &c) })
	c.run(func() error { return checkListeners(m, &c) })
	c.run(func() error { return checkRedis(m, &c) })
	c.run(func() error { return checkS3Grants(m, &c) })
	checkDocumented(m, &c)
	return c.list
}

// findings collects problems; an error from a check is itself a problem,
// since a configuration the checks cannot read is not proven safe.
type findings struct{ list []string }

func (f *findings) add(format string, args ...any) {
	f.list = append(f.list, fmt.Sprintf(format, args...))
}

func (f *findings) run(check func() error) {
	if err := check(); err != nil {
		f.add("cannot check: %v", err)
	}
}

// container is the part of an ECS container definition the checks read.
type container struct {
	Name        string
	Environment []struct{ Name, Value string }
	Secrets     []struct {
		Name      string
		ValueFrom string `json:"valueFrom"`
	}
	HealthCheck *struct{ Command []string } `json:"healthCheck"`
}

func (m *tfModule) containers(taskDef string) ([]container, error) {
	v, ok, err := m.evalAttr(m.blocks[taskDef].Body, "container_definitions")
	if err != nil {
		return nil, fmt.Errorf("%s: container_definitions: %w", taskDef, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s has no container_definitions", taskDef)
	}
	var defs []container
	if err := json.Unmarshal([]byte(v.AsString()), &defs); err != nil {
		return nil, fmt.Errorf("%s: container_definitions: %w", taskDef, err)
	}
	return defs, nil
}

// taskRoles returns the IAM roles a task definition runs with.
func (m *tfModule) taskRoles(taskDef string) []string {
	var roles []string
	body := m.blocks[taskDef].Body
	for _, name := range []string{"execution_role_arn", "task_role_arn"} {
		if attr, ok := body.Attributes[name]; ok {
			roles = append(roles, m.referencedBlocks(attr.Expr, "aws_iam_role.")...)
		}
	}
	return roles
}

// checkTaskDefinitionsOffToken: no task definition but the worker's, nor its
// roles and their policies, may name the HF token or Secrets Manager, and
// those roles may not be granted any Secrets Manager action.
func checkTaskDefinitionsOffToken(m *tfModule, c *findings) error {
	taskDefs := m.ofType("aws_ecs_task_definition.")
	if !slices.Contains(taskDefs, "aws_ecs_task_definition.api") {
		c.add("there is no aws_ecs_task_definition.api")
	}
	for _, td := range taskDefs {
		if td == workerTaskDef {
			continue
		}
		scanned := []string{td}
		for _, role := range m.taskRoles(td) {
			scanned = append(scanned, m.rolePolicies(role)...)
		}
		for _, addr := range scanned {
			for _, w := range m.words(m.blocks[addr]) {
				if namesHFToken(w) {
					c.add("%s (used by %s) names the HuggingFace token: %q", addr, td, w)
				}
				if namesSecretsManager(w) {
					c.add("%s (used by %s) names Secrets Manager: %q", addr, td, w)
				}
			}
		}
		for _, role := range m.taskRoles(td) {
			stmts, managed, err := m.roleStatements(role)
			if err != nil {
				return err
			}
			for _, g := range secretsManagerGrants(stmts) {
				c.add("%s (role of %s) must have no Secrets Manager permission, but %s", role, td, g)
			}
			for _, arn := range managed {
				if !managedExecutionPolicies[arn] {
					c.add("%s (role of %s) carries managed policy %q; only %v are allowed", role, td, arn, sortedKeys(managedExecutionPolicies))
				}
			}
		}
	}
	return nil
}

// s3BatchActions are what an S3 batch does in S3 (s3.tf), the only S3
// actions a role may hold, and s3BatchObjects where, as the checks
// evaluate it.
var (
	s3BatchActions = []string{"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
	s3BatchObjects = []string{"arn:aws:s3:::var.s3_batch_locations/*"}
)

// checkS3Grants: only the worker task definition's roles may touch S3,
// with the actions an S3 batch takes, on the objects under
// var.s3_batch_locations.
func checkS3Grants(m *tfModule, c *findings) error {
	for _, td := range m.ofType("aws_ecs_task_definition.") {
		for _, role := range m.taskRoles(td) {
			stmts, _, err := m.roleStatements(role)
			if err != nil {
				return err
			}
			for _, s := range stmts {
				if !strings.EqualFold(s.Effect, "Allow") || (len(s.NotActions) == 0 && !slices.ContainsFunc(s.Actions, grantsS3)) {
					continue
				}
				switch {
				case td != workerTaskDef:
					c.add("%s (role of %s) grants S3 %v; only the batch worker reads and writes S3", s.Where, td, s.Actions)
				case len(s.NotActions) > 0 || len(s.NotResources) > 0 ||
					slices.ContainsFunc(s.Actions, func(a string) bool { return !slices.Contains(s3BatchActions, a) }) ||
					!slices.Equal(s.Resources, s3BatchObjects):
					c.add("%s (role of %s) grants S3 wider than %v on %v: actions %v not_actions %v on %v not_resources %v",
						s.Where, td, s3BatchActions, s3BatchObjects, s.Actions, s.NotActions, s.Resources, s.NotResources)
				}
			}
		}
	}
	return nil
}

// grantsS3 reports whether an IAM action pattern covers some S3 action.
func grantsS3(action string) bool {
	action = strings.ToLower(action)
	ok, _ := path.Match(action, "s3:getobject")
	return ok || strings.HasPrefix(action, "s3:")
}

// checkWorkerToken: the worker gets the token as an ECS secret by ARN, its
// roles may read exactly that ARN, and its health check is readiness.
func checkWorkerToken(m *tfModule, c *findings) error {
	if m.blocks[workerTaskDef] == nil {
		c.add("there is no %s", workerTaskDef)
		return nil
	}
	defs, err := m.containers(workerTaskDef)
	if err != nil {
		return err
	}
	tokenARN := ""
	for _, d := range defs {
		for _, s := range d.Secrets {
			if namesHFToken(s.Name) && isSecretARNReference(s.ValueFrom) {
				tokenARN = s.ValueFrom
			}
		}
		for _, e := range d.Environment {
			if namesHFToken(e.Name) {
				c.add("%s container %q sets %s in plain environment; the token must come from secrets (valueFrom the Secrets Manager ARN)", workerTaskDef, d.Name, e.Name)
			}
		}
		if d.HealthCheck == nil || !slices.Contains(d.HealthCheck.Command, "healthcheck") || !slices.ContainsFunc(d.HealthCheck.Command, func(arg string) bool { return strings.Contains(arg, "/readyz") }) {
			c.add("%s container %q must health-check readiness with `hokusai-worker healthcheck --url .../readyz`", workerTaskDef, d.Name)
		}
	}
	if tokenARN == "" {
		c.add("%s has no HF_TOKEN secret whose valueFrom is the Secrets Manager ARN (var.* or aws_secretsmanager_secret.*.arn)", workerTaskDef)
	}
	granted := false
	for _, role := range m.taskRoles(workerTaskDef) {
		stmts, managed, err := m.roleStatements(role)
		if err != nil {
			return err
		}
		for _, arn := range managed {
			if !managedExecutionPolicies[arn] {
				c.add("%s (role of %s) carries managed policy %q; only %v are allowed", role, workerTaskDef, arn, sortedKeys(managedExecutionPolicies))
			}
		}
		for _, s := range stmts {
			if !strings.EqualFold(s.Effect, "Allow") || len(secretsManagerGrants([]iamStatement{s})) == 0 {
				continue
			}
			exact := len(s.NotActions) == 0 && len(s.NotResources) == 0 &&
				slices.Equal(s.Actions, []string{"secretsmanager:GetSecretValue"}) &&
				tokenARN != "" && slices.Equal(s.Resources, []string{tokenARN})
			if !exact {
				c.add("%s (role of %s) grants Secrets Manager wider than GetSecretValue on %s: actions %v not_actions %v on resources %v not_resources %v", s.Where, workerTaskDef, tokenARNOr(tokenARN), s.Actions, s.NotActions, s.Resources, s.NotResources)
				continue
			}
			granted = true
		}
	}
	if !granted {
		c.add("no role of %s may read the HF token secret %s (secretsmanager:GetSecretValue on exactly that ARN)", workerTaskDef, tokenARNOr(tokenARN))
	}
	return nil
}

// checkWorkerLanes: the worker task definition is one per entry of its
// for_each, each consuming the lanes its entry names (HOKUSAI_LANES), and
// the entries split the lanes as docker-compose does: batch on a service of
// its own, so a batch never takes a partner's vCPUs, and every lane served.
func checkWorkerLanes(m *tfModule, c *findings) error {
	b := m.blocks[workerTaskDef]
	if b == nil {
		return nil // checkWorkerToken says so
	}
	services, ok, err := m.evalAttr(b.Body, "for_each")
	if err != nil {
		return fmt.Errorf("%s: for_each: %w", workerTaskDef, err)
	}
	if !ok || !services.CanIterateElements() {
		c.add("%s needs a for_each of worker services, so batch runs apart from sync and async", workerTaskDef)
		return nil
	}
	defs, err := m.containers(workerTaskDef)
	if err != nil {
		return err
	}
	for _, d := range defs {
		if !slices.ContainsFunc(d.Environment, func(e struct{ Name, Value string }) bool {
			return e.Name == "HOKUSAI_LANES" && e.Value == "each.value.lanes"
		}) {
			c.add("%s container %q must set HOKUSAI_LANES to each.value.lanes, or every service consumes every lane", workerTaskDef, d.Name)
		}
	}
	served := map[string]bool{}
	for it := services.ElementIterator(); it.Next(); {
		key, svc := it.Element()
		if !svc.Type().IsObjectType() || !svc.Type().HasAttribute("lanes") || svc.GetAttr("lanes").Type() != cty.String {
			c.add("worker service %s has no lanes string", key.AsString())
			continue
		}
		lanes := strings.Split(svc.GetAttr("lanes").AsString(), ",")
		if slices.Contains(lanes, "batch") && len(lanes) > 1 {
			c.add("worker service %s consumes batch with %v: batch needs a service of its own", key.AsString(), lanes)
		}
		for _, l := range lanes {
			served[l] = true
		}
	}
	for _, l := range []string{"sync", "async", "batch"} {
		if !served[l] {
			c.add("no worker service consumes the %s lane", l)
		}
	}
	return nil
}

func tokenARNOr(arn string) string {
	if arn == "" {
		return "(none found)"
	}
	return arn
}

// isSecretARNReference reports whether an evaluated valueFrom is exactly one
// reference to a secret ARN: a variable or a Secrets Manager secret's arn.
func isSecretARNReference(v string) bool {
	parts := strings.Split(v, ".")
	switch {
	case len(parts) == 2 && parts[0] == "var":
		return true
	case len(parts) == 3 && parts[0] == "aws_secretsmanager_secret" && parts[2] == "arn":
		return true
	}
	return false
}

func checkListeners(m *tfModule, c *findings) error {
	var https []string
	protocols := map[string]string{}
	for _, addr := range m.ofType("aws_lb_listener.") {
		body := m.blocks[addr].Body
		protocol, err := m.evalString(body, "protocol")
		if err != nil {
			return err
		}
		protocols[addr] = protocol
		actions := nestedBlocks(body, "default_action")
		if len(actions) == 0 {
			c.add("%s has no default_action", addr)
		}
		for _, a := range actions {
			if err := checkAction(m, addr+" default_action", a, c); err != nil {
				return err
			}
			if protocol != "HTTPS" {
				if err := checkRedirectOnly(m, addr, a, c); err != nil {
					return err
				}
			}
		}
		if protocol == "HTTPS" {
			https = append(https, addr)
			for _, need := range []string{"certificate_arn", "ssl_policy"} {
				if _, ok := body.Attributes[need]; !ok {
					c.add("HTTPS listener %s has no %s", addr, need)
				}
			}
		}
	}
	if len(https) == 0 {
		c.add("there is no HTTPS listener (aws_lb_listener with protocol HTTPS)")
	}

	apiTG, err := apiTargetGroup(m)
	if err != nil {
		return err
	}
	if apiTG == "" {
		c.add("%s has no load_balancer block naming an aws_lb_target_group", apiService)
	} else if err := checkTargetGroupHealth(m, apiTG, c); err != nil {
		return err
	}

	forwarded := map[string]bool{}
	for _, addr := range m.ofType("aws_lb_listener_rule.") {
		body := m.blocks[addr].Body
		arn, ok := body.Attributes["listener_arn"]
		if !ok {
			c.add("%s has no listener_arn", addr)
			continue
		}
		on := m.referencedBlocks(arn.Expr, "aws_lb_listener.")
		toHTTPS := false
		for _, l := range on {
			if protocols[l] != "HTTPS" {
				c.add("%s is attached to %s (%s); a plain-HTTP listener must only redirect to HTTPS", addr, l, protocols[l])
			} else {
				toHTTPS = true
			}
		}
		paths, pathOnly, err := rulePaths(m, body)
		if err != nil {
			return err
		}
		for _, a := range nestedBlocks(body, "action") {
			if err := checkAction(m, addr+" action", a, c); err != nil {
				return err
			}
			typ, err := m.evalString(a.Body, "type")
			if err != nil {
				return err
			}
			if typ == "forward" && toHTTPS && pathOnly && apiTG != "" && slices.Contains(m.referencedBlocks(a.Body, "aws_lb_target_group."), apiTG) {
				for _, p := range paths {
					forwarded[p] = true
				}
			}
		}
	}
	for _, p := range apiPublicPaths {
		if !forwarded[p] {
			c.add("the HTTPS listener has no rule forwarding path pattern %q to the API target group %s", p, apiTG)
		}
	}
	return nil
}

// apiTargetGroup returns the target group the API service registers with.
func apiTargetGroup(m *tfModule) (string, error) {
	svc := m.blocks[apiService]
	if svc == nil {
		return "", fmt.Errorf("there is no %s", apiService)
	}
	for _, lb := range nestedBlocks(svc.Body, "load_balancer") {
		if tgs := m.referencedBlocks(lb.Body, "aws_lb_target_group."); len(tgs) == 1 {
			return tgs[0], nil
		}
	}
	return "", nil
}

func checkTargetGroupHealth(m *tfModule, tg string, c *findings) error {
	hcs := nestedBlocks(m.blocks[tg].Body, "health_check")
	if len(hcs) != 1 {
		c.add("%s has no health_check block", tg)
		return nil
	}
	p, err := m.evalString(hcs[0].Body, "path")
	if err != nil {
		return err
	}
	if p != "/ready" {
		c.add("%s health check path is %q; it must be the API's readiness path /ready", tg, p)
	}
	return nil
}

// rulePaths returns the path patterns of a listener rule and whether path
// patterns are its only conditions (a host or header condition would narrow
// which requests reach the API).
func rulePaths(m *tfModule, rule *hclsyntax.Body) (paths []string, pathOnly bool, err error) {
	pathOnly = true
	for _, cond := range nestedBlocks(rule, "condition") {
		for _, b := range cond.Body.Blocks {
			if b.Type != "path_pattern" {
				pathOnly = false
				continue
			}
			values, err := m.evalStrings(b.Body, "values")
			if err != nil {
				return nil, false, err
			}
			paths = append(paths, values...)
		}
	}
	return paths, pathOnly && len(paths) > 0, nil
}

// checkAction: a fixed response must be JSON, in content type and body.
func checkAction(m *tfModule, where string, action *hclsyntax.Block, c *findings) error {
	for _, fr := range nestedBlocks(action.Body, "fixed_response") {
		ct, err := m.evalString(fr.Body, "content_type")
		if err != nil {
			return err
		}
		if ct != "application/json" {
			c.add("%s answers content type %q; every fixed response must be application/json", where, ct)
		}
		body, err := m.evalString(fr.Body, "message_body")
		if err != nil {
			return err
		}
		var v map[string]any
		if json.Unmarshal([]byte(body), &v) != nil || v["code"] == nil || v["detail"] == nil {
			c.add("%s body %q is not a JSON error object with code and detail", where, body)
		}
	}
	return nil
}

// checkRedirectOnly: a non-HTTPS listener's action redirects to HTTPS with 301.
func checkRedirectOnly(m *tfModule, addr string, action *hclsyntax.Block, c *findings) error {
	typ, err := m.evalString(action.Body, "type")
	if err != nil {
		return err
	}
	redirects := nestedBlocks(action.Body, "redirect")
	if typ != "redirect" || len(redirects) != 1 {
		c.add("plain-HTTP listener %s must only redirect to HTTPS, but its default action is %q", addr, typ)
		return nil
	}
	protocol, err := m.evalString(redirects[0].Body, "protocol")
	if err != nil {
		return err
	}
	status, err := m.evalString(redirects[0].Body, "status_code")
	if err != nil {
		return err
	}
	if protocol != "HTTPS" || status != "HTTP_301" {
		c.add("plain-HTTP listener %s redirects with protocol %q status %q; want HTTPS and HTTP_301", addr, protocol, status)
	}
	return nil
}

// checkRedis: the replication group fails over across AZs, encrypts in
// transit and requires the AUTH token.
func checkRedis(m *tfModule, c *findings) error {
	groups := m.ofType("aws_elasticache_replication_group.")
	if len(groups) == 0 {
		c.add("there is no aws_elasticache_replication_group")
	}
	for _, g := range groups {
		body := m.blocks[g].Body
		for _, flag := range []string{"transit_encryption_enabled", "automatic_failover_enabled", "multi_az_enabled"} {
			v, err := m.evalString(body, flag)
			if err != nil {
				return err
			}
			if v != "true" {
				c.add("%s must set %s = true", g, flag)
			}
		}
		if _, ok := body.Attributes["auth_token"]; !ok {
			c.add("%s has no auth_token", g)
		}
	}
	return nil
}

// checkDocumented: every variable and output has a description.
func checkDocumented(m *tfModule, c *findings) {
	for _, addr := range append(m.ofType("var."), m.ofType("output.")...) {
		d, err := m.evalString(m.blocks[addr].Body, "description")
		if err != nil || strings.TrimSpace(d) == "" {
			c.add("%s has no description", addr)
		}
	}
}
