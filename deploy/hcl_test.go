package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// tfModule is a Terraform configuration read without Terraform: blocks by
// address ("aws_lb.api", "data.aws_iam_policy_document.x", "var.name",
// "output.url") and locals by name.
type tfModule struct {
	blocks map[string]*hclsyntax.Block
	locals map[string]hclsyntax.Expression
}

// readTerraform returns the .tf files of dir by base name.
func readTerraform(dir string) (map[string][]byte, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	files := make(map[string][]byte, len(names))
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		files[filepath.Base(name)] = src
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no .tf files in %s", dir)
	}
	return files, nil
}

func parseModule(files map[string][]byte) (*tfModule, error) {
	m := &tfModule{blocks: map[string]*hclsyntax.Block{}, locals: map[string]hclsyntax.Expression{}}
	parser := hclparse.NewParser()
	for _, name := range sortedKeys(files) {
		f, diags := parser.ParseHCL(files[name], name)
		if diags.HasErrors() {
			return nil, diags
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			switch {
			case b.Type == "resource" && len(b.Labels) == 2:
				m.blocks[b.Labels[0]+"."+b.Labels[1]] = b
			case b.Type == "data" && len(b.Labels) == 2:
				m.blocks["data."+b.Labels[0]+"."+b.Labels[1]] = b
			case b.Type == "variable" && len(b.Labels) == 1:
				m.blocks["var."+b.Labels[0]] = b
			case b.Type == "output" && len(b.Labels) == 1:
				m.blocks["output."+b.Labels[0]] = b
			case b.Type == "locals":
				for name, attr := range b.Body.Attributes {
					m.locals[name] = attr.Expr
				}
			}
		}
	}
	return m, nil
}

// ofType returns the addresses of the blocks whose address starts with
// prefix ("aws_lb_listener.", "var."), sorted.
func (m *tfModule) ofType(prefix string) []string {
	var addrs []string
	for addr := range m.blocks {
		if strings.HasPrefix(addr, prefix) {
			addrs = append(addrs, addr)
		}
	}
	sort.Strings(addrs)
	return addrs
}

// evalFunctions are the Terraform functions the checked expressions may use.
var evalFunctions = map[string]function.Function{
	"concat":     stdlib.ConcatFunc,
	"formatlist": stdlib.FormatListFunc,
	"join":       stdlib.JoinFunc,
	"jsonencode": stdlib.JSONEncodeFunc,
	"merge":      stdlib.MergeFunc,
}

// eval evaluates expr symbolically: a reference to a variable, resource or
// data source evaluates to its own address as a string
// ("var.hf_token_secret_arn"), and locals are evaluated the same way. So a
// jsonencode'd container definition comes out as JSON in which every
// reference can be compared by name.
func (m *tfModule) eval(expr hclsyntax.Expression) (cty.Value, error) {
	return m.evalGuarded(expr, map[string]bool{})
}

func (m *tfModule) evalGuarded(expr hclsyntax.Expression, evaluating map[string]bool) (cty.Value, error) {
	scope := map[string]any{}
	for _, tr := range expr.Variables() {
		names, complete := attrPath(tr)
		if names[0] == "local" && len(names) > 1 {
			v, err := m.local(names[1], evaluating)
			if err != nil {
				return cty.NilVal, err
			}
			insert(scope, names[:2], v)
			continue
		}
		leaf := cty.StringVal(strings.Join(names, "."))
		if !complete {
			leaf = cty.DynamicVal
		}
		insert(scope, names, leaf)
	}
	vars := map[string]cty.Value{}
	for k, v := range scope {
		vars[k] = toCty(v)
	}
	v, diags := expr.Value(&hcl.EvalContext{Variables: vars, Functions: evalFunctions})
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if !v.IsWhollyKnown() {
		return cty.NilVal, fmt.Errorf("%s: value depends on something only Terraform knows", expr.Range())
	}
	return v, nil
}

func (m *tfModule) local(name string, evaluating map[string]bool) (cty.Value, error) {
	expr, ok := m.locals[name]
	if !ok {
		return cty.NilVal, fmt.Errorf("local.%s is not defined", name)
	}
	if evaluating[name] {
		return cty.NilVal, fmt.Errorf("local.%s refers to itself", name)
	}
	evaluating[name] = true
	defer delete(evaluating, name)
	return m.evalGuarded(expr, evaluating)
}

// evalAttr evaluates the named attribute of body; ok is false when it is absent.
func (m *tfModule) evalAttr(body *hclsyntax.Body, name string) (v cty.Value, ok bool, err error) {
	attr, ok := body.Attributes[name]
	if !ok {
		return cty.NilVal, false, nil
	}
	v, err = m.eval(attr.Expr)
	return v, true, err
}

// evalString evaluates the named attribute as a string ("" when absent or
// not a string).
func (m *tfModule) evalString(body *hclsyntax.Body, name string) (string, error) {
	v, ok, err := m.evalAttr(body, name)
	if !ok || err != nil || v.IsNull() {
		return "", err
	}
	if v.Type() == cty.Number {
		return v.AsBigFloat().Text('f', -1), nil
	}
	if v.Type() == cty.Bool {
		return fmt.Sprint(v.True()), nil
	}
	if v.Type() != cty.String {
		return "", fmt.Errorf("%s: %s is not a string", attrRange(body, name), name)
	}
	return v.AsString(), nil
}

// evalStrings evaluates the named attribute as a list of strings.
func (m *tfModule) evalStrings(body *hclsyntax.Body, name string) ([]string, error) {
	v, ok, err := m.evalAttr(body, name)
	if !ok || err != nil || v.IsNull() {
		return nil, err
	}
	if !v.CanIterateElements() {
		return nil, fmt.Errorf("%s: %s is not a list", attrRange(body, name), name)
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.Type() != cty.String {
			return nil, fmt.Errorf("%s: %s holds a non-string", attrRange(body, name), name)
		}
		out = append(out, e.AsString())
	}
	return out, nil
}

func attrRange(body *hclsyntax.Body, name string) hcl.Range {
	return body.Attributes[name].SrcRange
}

// attrPath returns the root and attribute names leading a traversal, and
// whether that is the whole traversal (no index or splat steps).
func attrPath(tr hcl.Traversal) ([]string, bool) {
	names := []string{tr.RootName()}
	for _, step := range tr[1:] {
		attr, ok := step.(hcl.TraverseAttr)
		if !ok {
			return names, false
		}
		names = append(names, attr.Name)
	}
	return names, true
}

// insert places leaf at path in a tree of nested maps; a deeper path wins
// over a shorter one ending at the same node.
func insert(tree map[string]any, path []string, leaf cty.Value) {
	for _, name := range path[:len(path)-1] {
		next, ok := tree[name].(map[string]any)
		if !ok {
			next = map[string]any{}
			tree[name] = next
		}
		tree = next
	}
	last := path[len(path)-1]
	if _, isTree := tree[last].(map[string]any); !isTree {
		tree[last] = leaf
	}
}

func toCty(node any) cty.Value {
	tree, ok := node.(map[string]any)
	if !ok {
		return node.(cty.Value)
	}
	attrs := make(map[string]cty.Value, len(tree))
	for k, v := range tree {
		attrs[k] = toCty(v)
	}
	return cty.ObjectVal(attrs)
}

// references returns every reference in node as an address string
// ("aws_iam_role.api_execution.arn"); a reference to a local is followed into
// that local's expression, so indirection cannot hide a reference.
func (m *tfModule) references(node hclsyntax.Node) []string {
	var refs []string
	m.visit(node, map[string]bool{}, func(n hclsyntax.Node) {
		if tr, ok := n.(*hclsyntax.ScopeTraversalExpr); ok {
			names, _ := attrPath(tr.Traversal)
			refs = append(refs, strings.Join(names, "."))
		}
	})
	return refs
}

// words returns every name and string in node: block types and labels,
// attribute names, string literals and references (locals followed).
func (m *tfModule) words(node hclsyntax.Node) []string {
	var words []string
	m.visit(node, map[string]bool{}, func(n hclsyntax.Node) {
		switch n := n.(type) {
		case *hclsyntax.Block:
			words = append(words, n.Type)
			words = append(words, n.Labels...)
		case *hclsyntax.Attribute:
			words = append(words, n.Name)
		case *hclsyntax.LiteralValueExpr:
			if n.Val.Type() == cty.String && !n.Val.IsNull() {
				words = append(words, n.Val.AsString())
			}
		case *hclsyntax.ScopeTraversalExpr:
			names, _ := attrPath(n.Traversal)
			words = append(words, strings.Join(names, "."))
		}
	})
	return words
}

func (m *tfModule) visit(node hclsyntax.Node, seen map[string]bool, f func(hclsyntax.Node)) {
	// The walker returns no diagnostics.
	_ = hclsyntax.VisitAll(node, func(n hclsyntax.Node) hcl.Diagnostics {
		f(n)
		tr, ok := n.(*hclsyntax.ScopeTraversalExpr)
		if !ok || tr.Traversal.RootName() != "local" || len(tr.Traversal) < 2 {
			return nil
		}
		if attr, ok := tr.Traversal[1].(hcl.TraverseAttr); ok && !seen[attr.Name] {
			if expr, ok := m.locals[attr.Name]; ok {
				seen[attr.Name] = true
				m.visit(expr, seen, f)
			}
		}
		return nil
	})
}

// referencedBlocks returns the addresses of the blocks with the given
// address prefix that node refers to ("aws_iam_role." -> "aws_iam_role.api_execution").
func (m *tfModule) referencedBlocks(node hclsyntax.Node, prefix string) []string {
	set := map[string]bool{}
	for _, ref := range m.references(node) {
		if !strings.HasPrefix(ref, prefix) {
			continue
		}
		for addr := range m.blocks {
			if ref == addr || strings.HasPrefix(ref, addr+".") {
				set[addr] = true
			}
		}
	}
	return sortedKeys(set)
}

// nestedBlocks returns the blocks of the given type directly inside body.
func nestedBlocks(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// squash lowercases s and drops separators, so "HF_TOKEN", "hf-token" and
// "HfToken" compare equal.
func squash(s string) string {
	return strings.NewReplacer("_", "", "-", "", " ", "", ".", "").Replace(strings.ToLower(s))
}

// namesHFToken reports whether s names the HuggingFace token in any of its
// spellings (HF_TOKEN, HF_TOKEN_FILE, HUGGINGFACE_API_KEY, hf-token, ...).
func namesHFToken(s string) bool {
	s = squash(s)
	return strings.Contains(s, "hftoken") || strings.Contains(s, "huggingface")
}

// namesSecretsManager reports whether s names AWS Secrets Manager (an action,
// an ARN, a resource type, a managed policy).
func namesSecretsManager(s string) bool {
	return strings.Contains(squash(s), "secretsmanager")
}
