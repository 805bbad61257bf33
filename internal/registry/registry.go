package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/hokusai-ai/inference-queue/jobs"
)

// Key is the Redis hash of model id -> Spec JSON.
const Key = "hokusai:models"

// DefaultMaxBatchSize is a model's list-input limit when the registry sets none.
const DefaultMaxBatchSize = 100

// ErrNotFound is returned for an id the registry does not hold.
var ErrNotFound = errors.New("model not found")

// Spec is one registry entry.
type Spec struct {
	ID           string `json:"id" yaml:"id"`
	Name         string `json:"name" yaml:"name"`
	Source       string `json:"source" yaml:"source"`
	Revision     string `json:"revision,omitempty" yaml:"revision"`
	Pool         string `json:"pool" yaml:"pool"`
	MaxBatchSize int    `json:"max_batch_size" yaml:"max_batch_size"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// WithDefaults fills the pool and batch limit.
func (s Spec) WithDefaults() Spec {
	if s.Pool == "" {
		s.Pool = jobs.DefaultPool
	}
	if s.MaxBatchSize == 0 {
		s.MaxBatchSize = DefaultMaxBatchSize
	}
	if s.Name == "" {
		s.Name = "Model " + s.ID
	}
	return s
}

// Validate says, as a sentence, what is wrong with a spec.
func (s Spec) Validate() error {
	switch {
	case !idPattern.MatchString(s.ID):
		return fmt.Errorf("model id %q must be 1-64 letters, digits, dots, dashes or underscores", s.ID)
	case !strings.HasPrefix(s.Source, "file://") && !strings.HasPrefix(s.Source, "hf://"):
		return fmt.Errorf("model %s: source %q must start with file:// or hf://", s.ID, s.Source)
	case strings.HasPrefix(s.Source, "hf://") && strings.Count(strings.TrimPrefix(s.Source, "hf://"), "/") != 1:
		return fmt.Errorf("model %s: source %q must be hf://ORG/REPO", s.ID, s.Source)
	case !idPattern.MatchString(s.Pool):
		return fmt.Errorf("model %s: pool %q must be letters, digits, dots, dashes or underscores", s.ID, s.Pool)
	case s.MaxBatchSize < 1 || s.MaxBatchSize > 10000:
		return fmt.Errorf("model %s: max_batch_size %d must be between 1 and 10000", s.ID, s.MaxBatchSize)
	}
	return nil
}

// File is the YAML document `hokusai models apply -f` reads.
type File struct {
	Models []Spec `yaml:"models"`
}

// Parse reads a registry YAML document, fills defaults and validates every entry.
func Parse(r io.Reader) ([]Spec, error) {
	var f File
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("read registry YAML: %w", err)
	}
	seen := map[string]bool{}
	for i, s := range f.Models {
		s = s.WithDefaults()
		if err := s.Validate(); err != nil {
			return nil, err
		}
		if seen[s.ID] {
			return nil, fmt.Errorf("model %s is listed twice", s.ID)
		}
		seen[s.ID] = true
		f.Models[i] = s
	}
	return f.Models, nil
}

// Apply writes specs to the registry, replacing entries with the same id and
// leaving others alone.
func Apply(ctx context.Context, rdb redis.UniversalClient, specs []Spec) error {
	if len(specs) == 0 {
		return nil
	}
	fields := make([]any, 0, 2*len(specs))
	for _, s := range specs {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		fields = append(fields, s.ID, b)
	}
	if err := rdb.HSet(ctx, Key, fields...).Err(); err != nil {
		return fmt.Errorf("write model registry: %w", err)
	}
	return nil
}

// List returns every spec, ordered by id (numerically where ids are numbers).
func List(ctx context.Context, rdb redis.UniversalClient) ([]Spec, error) {
	all, err := rdb.HGetAll(ctx, Key).Result()
	if err != nil {
		return nil, fmt.Errorf("read model registry: %w", err)
	}
	specs := make([]Spec, 0, len(all))
	for id, raw := range all {
		var s Spec
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return nil, fmt.Errorf("registry entry %s is not valid JSON: %w", id, err)
		}
		specs = append(specs, s.WithDefaults())
	}
	sort.Slice(specs, func(i, j int) bool { return idLess(specs[i].ID, specs[j].ID) })
	return specs, nil
}

func idLess(a, b string) bool {
	na, ea := strconv.Atoi(a)
	nb, eb := strconv.Atoi(b)
	if ea == nil && eb == nil {
		return na < nb
	}
	return a < b
}
