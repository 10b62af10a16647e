package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The Helm chart (helm/bulwark) is checked in two steps: its values and
// metadata by reading them (always), and its templates by rendering them
// with helm when a helm binary is at hand ($BULWARK_HELM, bin/helm or helm
// on the PATH; `make helm-check` builds bin/helm from the Go module proxy
// and runs this test with it, after helm lint).

const chartDir = "helm/bulwark"

// chartRoles are the roles the chart knows, as internal/server names
// them; all are enabled by default.
var chartRoles = []string{"api", "workers", "cdc", "features", "exports"}

type roleValues struct {
	Enabled     bool           `yaml:"enabled"`
	Replicas    int            `yaml:"replicas"`
	MaxConns    int            `yaml:"maxConns"`
	Resources   map[string]any `yaml:"resources"`
	PDB         map[string]int `yaml:"pdb"`
	Autoscaling struct {
		Enabled     bool           `yaml:"enabled"`
		MinReplicas int            `yaml:"minReplicas"`
		MaxReplicas int            `yaml:"maxReplicas"`
		TargetCPU   int            `yaml:"targetCPUUtilizationPercentage"`
		Behavior    map[string]any `yaml:"behavior"`
	} `yaml:"autoscaling"`
}

// maxReplicasBound is the largest maxReplicas the defaults may set: the
// incident this chart answers was unbounded scale-out crushing the database.
const maxReplicasBound = 20

func TestHelmChartValues(t *testing.T) {
	var chart struct {
		APIVersion string `yaml:"apiVersion"`
		Name       string `yaml:"name"`
		Version    string `yaml:"version"`
		AppVersion string `yaml:"appVersion"`
	}
	readYAML(t, chartDir+"/Chart.yaml", &chart)
	if chart.APIVersion != "v2" || chart.Name != "bulwark" || chart.Version == "" || chart.AppVersion == "" {
		t.Errorf("Chart.yaml: %+v", chart)
	}
	var values struct {
		Roles map[string]roleValues `yaml:"roles"`
		Kafka struct {
			Brokers *string `yaml:"brokers"`
		} `yaml:"kafka"`
		Postgres      map[string]string `yaml:"postgres"`
		ExportsVolume struct {
			Size        string   `yaml:"size"`
			AccessModes []string `yaml:"accessModes"`
		} `yaml:"exportsVolume"`
		Probes struct {
			Liveness  struct{ Path string } `yaml:"liveness"`
			Readiness struct{ Path string } `yaml:"readiness"`
		} `yaml:"probes"`
	}
	readYAML(t, chartDir+"/values.yaml", &values)
	if values.Probes.Liveness.Path != "/healthz" || values.Probes.Readiness.Path != "/readyz" {
		t.Errorf("probes: liveness %q readiness %q, want /healthz and /readyz", values.Probes.Liveness.Path, values.Probes.Readiness.Path)
	}
	if values.Kafka.Brokers == nil {
		t.Error("values.yaml has no kafka.brokers")
	}
	if _, ok := values.Postgres["url"]; !ok {
		t.Error("values.yaml has no postgres.url")
	}
	if v := values.ExportsVolume; v.Size == "" || !slices.Contains(v.AccessModes, "ReadWriteMany") {
		t.Errorf("exportsVolume: %+v: want a size and ReadWriteMany (api and exports pods share the files)", v)
	}
	for _, name := range chartRoles {
		r, ok := values.Roles[name]
		if !ok {
			t.Errorf("values.yaml: no roles.%s", name)
			continue
		}
		if !r.Enabled {
			t.Errorf("roles.%s: disabled by default", name)
		}
		if r.Resources["requests"] == nil || r.MaxConns <= 0 || len(r.PDB) != 1 {
			t.Errorf("roles.%s: resource requests %v, maxConns %d, pdb %v: want requests, a pool bound and one PDB bound", name, r.Resources["requests"], r.MaxConns, r.PDB)
		}
		a := r.Autoscaling
		if name == "cdc" {
			if a.Enabled || r.Replicas != 1 {
				t.Errorf("roles.cdc: replicas %d, autoscaling %v: want exactly one relay per slot", r.Replicas, a.Enabled)
			}
			continue
		}
		if !a.Enabled || a.MinReplicas < 1 || a.MinReplicas > a.MaxReplicas || a.MaxReplicas > maxReplicasBound ||
			a.TargetCPU <= 0 || a.Behavior["scaleUp"] == nil || a.Behavior["scaleDown"] == nil {
			t.Errorf("roles.%s.autoscaling: %+v: want bounded min/max (1 ≤ min ≤ max ≤ %d), a target and both behaviours", name, a, maxReplicasBound)
		}
	}
}

func TestHelmChartRenders(t *testing.T) {
	helm := os.Getenv("BULWARK_HELM")
	if _, err := os.Stat("../bin/helm"); helm == "" && err == nil {
		helm = "../bin/helm" // left by make helm-check
	}
	if helm == "" {
		var err error
		if helm, err = exec.LookPath("helm"); err != nil {
			t.Skip("no helm binary (BULWARK_HELM, bin/helm or helm on the PATH): templates not rendered; `make helm-check` builds helm and runs helm lint, helm template and this test")
		}
	}
	set := []string{"--set", "kafka.brokers=kafka:9092", "--set", "postgres.url=postgres://bulwark@db/bulwark",
		"--set", "adminKey.value=bwa_x", "--set", "serviceMonitor.enabled=true"}
	if out, err := exec.Command(helm, append([]string{"lint", "--strict", chartDir}, set...)...).CombinedOutput(); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	out, err := exec.Command(helm, append([]string{"template", "rel", chartDir}, set...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	kinds := map[string][]string{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
			Spec struct {
				Replicas *int `yaml:"replicas"`
				Template struct {
					Spec struct {
						Containers []struct {
							Args           []string `yaml:"args"`
							LivenessProbe  any      `yaml:"livenessProbe"`
							ReadinessProbe any      `yaml:"readinessProbe"`
							VolumeMounts   []struct {
								Name      string `yaml:"name"`
								MountPath string `yaml:"mountPath"`
							} `yaml:"volumeMounts"`
						} `yaml:"containers"`
						Volumes []struct {
							Name                  string `yaml:"name"`
							PersistentVolumeClaim *struct {
								ClaimName string `yaml:"claimName"`
							} `yaml:"persistentVolumeClaim"`
						} `yaml:"volumes"`
					} `yaml:"spec"`
				} `yaml:"template"`
				MaxReplicas int      `yaml:"maxReplicas"`
				Behavior    any      `yaml:"behavior"`
				AccessModes []string `yaml:"accessModes"`
			} `yaml:"spec"`
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered chart: %v", err)
		}
		if doc.Kind == "" {
			continue
		}
		kinds[doc.Kind] = append(kinds[doc.Kind], doc.Metadata.Name)
		switch doc.Kind {
		case "Deployment":
			c := doc.Spec.Template.Spec.Containers
			if len(c) != 1 || c[0].LivenessProbe == nil || c[0].ReadinessProbe == nil || !slices.Contains(c[0].Args, "serve") {
				t.Errorf("deployment %s: containers %+v", doc.Metadata.Name, c)
			}
			if strings.HasSuffix(doc.Metadata.Name, "-cdc") && (doc.Spec.Replicas == nil || *doc.Spec.Replicas != 1) {
				t.Errorf("deployment %s: replicas %v, want 1", doc.Metadata.Name, doc.Spec.Replicas)
			}
			// The api pods serve the files the exports pods write: both
			// (and only they) mount the shared claim at <data-dir>/exports.
			claim, mounted := "", false
			for _, v := range doc.Spec.Template.Spec.Volumes {
				if v.Name == "exports" && v.PersistentVolumeClaim != nil {
					claim = v.PersistentVolumeClaim.ClaimName
				}
			}
			for _, c := range c {
				for _, m := range c.VolumeMounts {
					mounted = mounted || m.Name == "exports" && m.MountPath == "/var/lib/bulwark/exports"
				}
			}
			shares := strings.HasSuffix(doc.Metadata.Name, "-api") || strings.HasSuffix(doc.Metadata.Name, "-exports")
			if shares != (claim == "rel-bulwark-export-files" && mounted) {
				t.Errorf("deployment %s: exports claim %q mounted %v", doc.Metadata.Name, claim, mounted)
			}
		case "PersistentVolumeClaim":
			if !slices.Contains(doc.Spec.AccessModes, "ReadWriteMany") {
				t.Errorf("claim %s: access modes %v, want ReadWriteMany", doc.Metadata.Name, doc.Spec.AccessModes)
			}
		case "HorizontalPodAutoscaler":
			if doc.Spec.MaxReplicas < 1 || doc.Spec.Behavior == nil || strings.HasSuffix(doc.Metadata.Name, "-cdc") {
				t.Errorf("autoscaler %s: max %d, behavior %v", doc.Metadata.Name, doc.Spec.MaxReplicas, doc.Spec.Behavior)
			}
		}
	}
	for kind, want := range map[string]int{"Deployment": 5, "Service": 5, "PodDisruptionBudget": 5, "HorizontalPodAutoscaler": 4,
		"ServiceMonitor": 1, "Secret": 1, "PersistentVolumeClaim": 1} {
		if len(kinds[kind]) != want {
			t.Errorf("%d %s rendered (%v), want %d", len(kinds[kind]), kind, kinds[kind], want)
		}
	}
	// Required values are refused with a message, not rendered empty.
	out, err = exec.Command(helm, "template", "rel", chartDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "kafka.brokers is required") {
		t.Errorf("helm template without kafka.brokers: err %v\n%s", err, out)
	}
	out, err = exec.Command(helm, append([]string{"template", "rel", chartDir, "--set", "exportsVolume.accessModes={ReadWriteOnce}"}, set...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "must include ReadWriteMany") {
		t.Errorf("helm template with a ReadWriteOnce exports volume: err %v\n%s", err, out)
	}
	// An existing claim: mounted, none created.
	out, err = exec.Command(helm, append([]string{"template", "rel", chartDir, "--set", "exportsVolume.existingClaim=shared-exports"}, set...)...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "kind: PersistentVolumeClaim") || strings.Count(string(out), "claimName: shared-exports") != 2 {
		t.Errorf("helm template with an existing exports claim: err %v\n%s", err, out)
	}
	out, err = exec.Command(helm, append([]string{"template", "rel", chartDir, "--set", "roles.cdc.replicas=2"}, set...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "exactly one replica") {
		t.Errorf("helm template with 2 cdc replicas: err %v\n%s", err, out)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
