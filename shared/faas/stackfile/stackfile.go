// Package stackfile reads an OpenFaaS stack.yml into faas-provider
// deployments, so `pulsevault dev` deploys the same file that
// `faas-cli up -f stack.yml` deploys to a cluster.
package stackfile

import (
	"fmt"
	"os"
	"sort"

	"github.com/drone/envsubst"
	"github.com/openfaas/faas-provider/types"
	"go.yaml.in/yaml/v3"
)

// Stack is the part of stack.yml a provider needs.
type Stack struct {
	Provider struct {
		Name    string `yaml:"name"`
		Gateway string `yaml:"gateway"`
	} `yaml:"provider"`
	Functions map[string]Function `yaml:"functions"`
}

// Function is one entry of stack.yml's functions, with faas-cli's key names.
type Function struct {
	Lang        string            `yaml:"lang"`
	Handler     string            `yaml:"handler"`
	Image       string            `yaml:"image"`
	Namespace   string            `yaml:"namespace"`
	Environment map[string]string `yaml:"environment"`
	Secrets     []string          `yaml:"secrets"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
	Limits      *Resources        `yaml:"limits"`
	Requests    *Resources        `yaml:"requests"`
}

// Resources are memory and CPU limits or requests.
type Resources struct {
	Memory string `yaml:"memory"`
	CPU    string `yaml:"cpu"`
}

// Parse substitutes ${VAR} / ${VAR:-default} from getenv, as faas-cli does,
// and decodes the result.
func Parse(data []byte, getenv func(string) string) (*Stack, error) {
	expanded, err := envsubst.Eval(string(data), getenv)
	if err != nil {
		return nil, fmt.Errorf("stack.yml: %w", err)
	}
	var s Stack
	if err := yaml.Unmarshal([]byte(expanded), &s); err != nil {
		return nil, fmt.Errorf("stack.yml: %w", err)
	}
	if len(s.Functions) == 0 {
		return nil, fmt.Errorf("stack.yml: no functions")
	}
	for name, f := range s.Functions {
		if f.Image == "" {
			return nil, fmt.Errorf("stack.yml: function %s has no image", name)
		}
	}
	return &s, nil
}

// ReadFile is Parse of a file.
func ReadFile(path string, getenv func(string) string) (*Stack, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, getenv)
}

// Deployments returns the functions as deployment requests, sorted by name.
func (s *Stack) Deployments() []types.FunctionDeployment {
	names := make([]string, 0, len(s.Functions))
	for n := range s.Functions {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]types.FunctionDeployment, 0, len(names))
	for _, n := range names {
		f := s.Functions[n]
		d := types.FunctionDeployment{
			Service:     n,
			Image:       f.Image,
			Namespace:   f.Namespace,
			EnvVars:     f.Environment,
			Secrets:     f.Secrets,
			Labels:      ptr(f.Labels),
			Annotations: ptr(f.Annotations),
			Limits:      resources(f.Limits),
			Requests:    resources(f.Requests),
		}
		out = append(out, d)
	}
	return out
}

func ptr(m map[string]string) *map[string]string {
	if m == nil {
		return nil
	}
	return &m
}

func resources(r *Resources) *types.FunctionResources {
	if r == nil {
		return nil
	}
	return &types.FunctionResources{Memory: r.Memory, CPU: r.CPU}
}
