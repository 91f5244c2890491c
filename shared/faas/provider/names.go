package provider

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Namespace is the one namespace the provider serves, OpenFaaS's default
// for functions. Requests may name it (NAME.openfaas-fn, ?namespace=) or
// leave it out.
const Namespace = "openfaas-fn"

// Errors returned by the Go API; the HTTP API maps them to 400, 404 and 409.
var (
	ErrInvalid  = errors.New("invalid request")
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

// checkFunctionName accepts DNS-1123 labels, as Kubernetes (and so
// OpenFaaS) does for a function's service name: nothing that could be a
// path, a dot-dot, or a flag.
func checkFunctionName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: function name is empty", ErrInvalid)
	}
	if len(name) > 63 || !dnsLabel.MatchString(name) {
		return fmt.Errorf("%w: invalid function name %q: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label)", ErrInvalid, name)
	}
	return nil
}

// checkSecretName accepts DNS-1123 subdomains, as Kubernetes does for
// secrets.
func checkSecretName(name string) error {
	if len(name) == 0 || len(name) > 253 || !dnsSubdomain.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%w: invalid secret name %q: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (a DNS-1123 subdomain)", ErrInvalid, name)
	}
	return nil
}

// checkNamespace accepts the served namespace or none.
func checkNamespace(ns string) error {
	if ns != "" && ns != Namespace {
		return fmt.Errorf("%w: namespace %q is not served here: this provider has only %q", ErrInvalid, ns, Namespace)
	}
	return nil
}

// splitFunction splits "name[.namespace]" as the gateway does for
// /function/NAME.NAMESPACE.
func splitFunction(s string) (name, ns string, err error) {
	name, ns, _ = strings.Cut(s, ".")
	if err := checkFunctionName(name); err != nil {
		return "", "", err
	}
	if err := checkNamespace(ns); err != nil {
		return "", "", err
	}
	return name, ns, nil
}
