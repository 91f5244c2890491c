// Command kuberender renders Helm charts and reads Kubernetes manifests the
// way a cluster would, without one: `helm template` through Helm's own Go
// packages, then a strict decode of every object into the Kubernetes API
// types (client-go's scheme plus apiextensions), so an unknown field, a
// field of the wrong type or an unknown kind is an error, as the API server
// would make it. tests/helm_test.go runs it on infra/helm and infra/k8s.
//
//	kuberender -chart DIR -values FILE[,FILE...] -release NAME -namespace NS
//	kuberender FILE.yaml...
//
// It prints the objects as a JSON array ({source, kind, apiVersion, name,
// namespace, object}) on stdout, every decoding error on stderr (one a
// line, naming the template), and exits 1 when there was any.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// kubeVersion is the cluster version charts render for: Kubernetes 1.33,
// a release every current chart supports.
const kubeVersion = "v1.33.0"

type object struct {
	Source     string         `json:"source"`
	Kind       string         `json:"kind"`
	APIVersion string         `json:"apiVersion"`
	Name       string         `json:"name"`
	Namespace  string         `json:"namespace,omitempty"`
	Object     map[string]any `json:"object"`
}

func main() {
	chart := flag.String("chart", "", "chart directory to render (helm template)")
	values := flag.String("values", "", "comma-separated values files, later ones win")
	release := flag.String("release", "release", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	flag.Parse()

	var docs []doc
	var err error
	if *chart != "" {
		docs, err = render(*chart, *values, *release, *namespace)
	} else {
		docs, err = readFiles(flag.Args())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kuberender:", err)
		os.Exit(2)
	}
	objs, errs := decodeAll(docs)
	out, _ := json.MarshalIndent(objs, "", "  ")
	os.Stdout.Write(append(out, '\n'))
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, e)
	}
	if len(errs) > 0 {
		os.Exit(1)
	}
}

// doc is one YAML document and where it came from.
type doc struct {
	source string
	data   []byte
}

func render(dir, valueFiles, release, namespace string) ([]doc, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, err
	}
	vals := map[string]any{}
	for _, f := range strings.Split(valueFiles, ",") {
		if f == "" {
			continue
		}
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			return nil, err
		}
		vals = chartutil.CoalesceTables(v.AsMap(), vals) // v wins over what came before
	}
	install := action.NewInstall(&action.Configuration{})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.IncludeCRDs = true
	install.ReleaseName = release
	install.Namespace = namespace
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, err
	}
	install.KubeVersion = kv
	rel, err := install.Run(ch, vals)
	if err != nil {
		return nil, err
	}
	manifest := rel.Manifest
	for _, h := range rel.Hooks {
		manifest += "\n---\n# Source: " + h.Path + "\n" + h.Manifest
	}
	var docs []doc
	for _, m := range releaseutil.SplitManifests(manifest) {
		docs = append(docs, doc{source: sourceOf(m), data: []byte(m)})
	}
	sort.SliceStable(docs, func(i, j int) bool { return docs[i].source < docs[j].source })
	return docs, nil
}

func sourceOf(m string) string {
	for _, line := range strings.Split(m, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "# Source: "); ok {
			return s
		}
	}
	return "?"
}

func readFiles(paths []string) ([]doc, error) {
	if len(paths) == 0 {
		return nil, errors.New("give -chart DIR or manifest files")
	}
	var docs []doc
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
		for i := 1; ; i++ {
			d, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			docs = append(docs, doc{source: fmt.Sprintf("%s#%d", p, i), data: d})
		}
	}
	return docs, nil
}

// decodeAll decodes every non-empty document strictly into its API type.
func decodeAll(docs []doc) ([]object, []string) {
	sch := runtime.NewScheme()
	_ = scheme.AddToScheme(sch)
	_ = apiextensionsv1.AddToScheme(sch)
	strict := serializer.NewCodecFactory(sch, serializer.EnableStrict).UniversalDeserializer()
	objs := []object{}
	var errs []string
	for _, d := range docs {
		var generic map[string]any
		if err := yaml.Unmarshal(d.data, &generic); err != nil {
			errs = append(errs, fmt.Sprintf("%s: not YAML: %v", d.source, err))
			continue
		}
		if len(generic) == 0 {
			continue // a comment-only document, as templates switched off leave
		}
		o := object{Source: d.source, Object: generic}
		o.Kind, _ = generic["kind"].(string)
		o.APIVersion, _ = generic["apiVersion"].(string)
		if md, ok := generic["metadata"].(map[string]any); ok {
			o.Name, _ = md["name"].(string)
			o.Namespace, _ = md["namespace"].(string)
		}
		objs = append(objs, o)
		if _, _, err := strict.Decode(d.data, nil, nil); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %s %s: %v", d.source, o.Kind, o.Name, err))
		}
	}
	return objs, errs
}
