package deploy

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// iamStatement is one statement of an IAM policy, with references left as
// addresses ("var.hf_token_secret_arn").
type iamStatement struct {
	Where        string
	Effect       string
	Actions      []string
	NotActions   []string
	Resources    []string
	NotResources []string
}

// managedExecutionPolicies are the AWS-managed policies an ECS task role may
// carry; none of them grants Secrets Manager.
var managedExecutionPolicies = map[string]bool{
	"arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy": true,
}

// rolePolicies returns the addresses of the blocks that grant role its
// permissions: the role itself, policies and attachments naming it (directly
// or through locals or for_each), and the policies and policy documents
// those refer to.
func (m *tfModule) rolePolicies(role string) []string {
	set := map[string]bool{role: true}
	for _, typ := range []string{"aws_iam_role_policy.", "aws_iam_role_policy_attachment.", "aws_iam_policy_attachment."} {
		for _, addr := range m.ofType(typ) {
			if slices.Contains(m.referencedBlocks(m.blocks[addr].Body, "aws_iam_role."), role) {
				set[addr] = true
			}
		}
	}
	for _, addr := range sortedKeys(set) {
		for _, typ := range []string{"aws_iam_policy.", "data.aws_iam_policy_document."} {
			for _, ref := range m.referencedBlocks(m.blocks[addr].Body, typ) {
				set[ref] = true
			}
		}
	}
	return sortedKeys(set)
}

// roleStatements returns every IAM statement granted to role, and the
// AWS-managed (or otherwise literal) policy ARNs attached to it.
func (m *tfModule) roleStatements(role string) (stmts []iamStatement, managed []string, err error) {
	for _, addr := range m.rolePolicies(role) {
		body := m.blocks[addr].Body
		var policies []*hclsyntax.Attribute
		switch {
		case strings.HasPrefix(addr, "aws_iam_role."):
			for _, inline := range nestedBlocks(body, "inline_policy") {
				if attr, ok := inline.Body.Attributes["policy"]; ok {
					policies = append(policies, attr)
				}
			}
			arns, err := m.evalStrings(body, "managed_policy_arns")
			if err != nil {
				return nil, nil, err
			}
			managed = append(managed, arns...)
		case strings.HasPrefix(addr, "aws_iam_role_policy_attachment."), strings.HasPrefix(addr, "aws_iam_policy_attachment."):
			arn, err := m.evalString(body, "policy_arn")
			if err != nil {
				return nil, nil, err
			}
			if !strings.HasPrefix(arn, "aws_iam_policy.") {
				managed = append(managed, arn)
			}
		case strings.HasPrefix(addr, "data.aws_iam_policy_document."):
			doc, err := m.policyDocument(addr)
			if err != nil {
				return nil, nil, err
			}
			stmts = append(stmts, doc...)
		default: // aws_iam_role_policy, aws_iam_policy
			if attr, ok := body.Attributes["policy"]; ok {
				policies = append(policies, attr)
			}
		}
		for _, attr := range policies {
			s, err := m.policyStatements(addr, attr.Expr)
			if err != nil {
				return nil, nil, err
			}
			stmts = append(stmts, s...)
		}
	}
	return stmts, managed, nil
}

// policyStatements reads a policy attribute: a reference to a policy
// document data source is read from that block (by roleStatements, which
// collects it); anything else must evaluate to policy JSON.
func (m *tfModule) policyStatements(where string, expr hclsyntax.Expression) ([]iamStatement, error) {
	if tr, ok := expr.(*hclsyntax.ScopeTraversalExpr); ok && tr.Traversal.RootName() == "data" {
		return nil, nil
	}
	v, err := m.eval(expr)
	if err != nil {
		return nil, fmt.Errorf("%s: policy: %w", where, err)
	}
	var doc struct {
		Statement oneOrMany[struct {
			Effect      string
			Action      oneOrMany[string]
			NotAction   oneOrMany[string]
			Resource    oneOrMany[string]
			NotResource oneOrMany[string]
		}]
	}
	if err := json.Unmarshal([]byte(v.AsString()), &doc); err != nil {
		return nil, fmt.Errorf("%s: policy is not IAM JSON: %w", where, err)
	}
	var out []iamStatement
	for _, s := range doc.Statement {
		out = append(out, iamStatement{Where: where, Effect: s.Effect, Actions: s.Action, NotActions: s.NotAction, Resources: s.Resource, NotResources: s.NotResource})
	}
	return out, nil
}

// policyDocument reads the statement blocks of an aws_iam_policy_document.
func (m *tfModule) policyDocument(addr string) ([]iamStatement, error) {
	body := m.blocks[addr].Body
	for _, merged := range []string{"source_policy_documents", "override_policy_documents", "source_json", "override_json"} {
		if _, ok := body.Attributes[merged]; ok {
			return nil, fmt.Errorf("%s: %s hides statements from this check; write them out", addr, merged)
		}
	}
	var out []iamStatement
	for _, b := range nestedBlocks(body, "statement") {
		s := iamStatement{Where: addr, Effect: "Allow"}
		var err error
		fields := []struct {
			name string
			dst  *[]string
		}{{"actions", &s.Actions}, {"not_actions", &s.NotActions}, {"resources", &s.Resources}, {"not_resources", &s.NotResources}}
		for _, f := range fields {
			if *f.dst, err = m.evalStrings(b.Body, f.name); err != nil {
				return nil, err
			}
		}
		if effect, err := m.evalString(b.Body, "effect"); err != nil {
			return nil, err
		} else if effect != "" {
			s.Effect = effect
		}
		out = append(out, s)
	}
	return out, nil
}

// oneOrMany decodes an IAM field that may be a string or a list of strings.
type oneOrMany[T any] []T

func (o *oneOrMany[T]) UnmarshalJSON(b []byte) error {
	var many []T
	if err := json.Unmarshal(b, &many); err == nil {
		*o = many
		return nil
	}
	var one T
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*o = []T{one}
	return nil
}

// grantsSecretsManager reports whether an IAM action pattern covers any
// Secrets Manager action ("*", "secretsmanager:*", "secrets*:Get*", ...).
func grantsSecretsManager(action string) bool {
	action = strings.ToLower(action)
	if strings.HasPrefix(action, "secretsmanager:") {
		return true
	}
	ok, _ := path.Match(action, "secretsmanager:getsecretvalue")
	return ok
}

// secretsManagerGrants returns the statements of stmts that allow some
// Secrets Manager action, described for a finding.
func secretsManagerGrants(stmts []iamStatement) []string {
	var grants []string
	for _, s := range stmts {
		if !strings.EqualFold(s.Effect, "Allow") {
			continue
		}
		if len(s.NotActions) > 0 {
			grants = append(grants, fmt.Sprintf("%s allows everything but %v (NotAction)", s.Where, s.NotActions))
			continue
		}
		for _, a := range s.Actions {
			if grantsSecretsManager(a) {
				grants = append(grants, fmt.Sprintf("%s allows %q on %v", s.Where, a, s.Resources))
			}
		}
	}
	return grants
}
