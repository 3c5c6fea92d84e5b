package docker

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/sailmaker/sailmaker/config"
)

// manifests are every object of docker/k8s, decoded strictly (an unknown
// field is an error) into its typed Kubernetes API object.
type manifests struct {
	namespaces   map[string]*corev1.Namespace
	secrets      map[string]*corev1.Secret
	configMaps   map[string]*corev1.ConfigMap
	pvcs         map[string]*corev1.PersistentVolumeClaim
	services     map[string]*corev1.Service
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
}

func decodeManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{
		namespaces: map[string]*corev1.Namespace{}, secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{},
		pvcs: map[string]*corev1.PersistentVolumeClaim{}, services: map[string]*corev1.Service{},
		deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
	}
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var tm metav1.TypeMeta
			require.NoError(t, yaml.Unmarshal(doc, &tm), "%s #%d", f, i)
			at := fmt.Sprintf("%s #%d (%s)", f, i, tm.Kind)
			var obj interface{ GetName() string }
			switch tm.APIVersion + "/" + tm.Kind {
			case "v1/Namespace":
				o := &corev1.Namespace{}
				obj, m.namespaces[strictName(t, doc, o, at)] = o, o
			case "v1/Secret":
				o := &corev1.Secret{}
				obj, m.secrets[strictName(t, doc, o, at)] = o, o
			case "v1/ConfigMap":
				o := &corev1.ConfigMap{}
				obj, m.configMaps[strictName(t, doc, o, at)] = o, o
			case "v1/PersistentVolumeClaim":
				o := &corev1.PersistentVolumeClaim{}
				obj, m.pvcs[strictName(t, doc, o, at)] = o, o
			case "v1/Service":
				o := &corev1.Service{}
				obj, m.services[strictName(t, doc, o, at)] = o, o
			case "apps/v1/Deployment":
				o := &appsv1.Deployment{}
				obj, m.deployments[strictName(t, doc, o, at)] = o, o
			case "apps/v1/StatefulSet":
				o := &appsv1.StatefulSet{}
				obj, m.statefulSets[strictName(t, doc, o, at)] = o, o
			default:
				t.Fatalf("%s: apiVersion %q kind %q: the test does not know it (add it)", at, tm.APIVersion, tm.Kind)
			}
			require.NotEmpty(t, obj.GetName(), "%s has a name", at)
		}
	}
	return m
}

type named interface{ GetName() string }

func strictName(t *testing.T, doc []byte, into named, at string) string {
	t.Helper()
	require.NoError(t, yaml.UnmarshalStrict(doc, into), "%s: not a valid object", at)
	return into.GetName()
}

// shippedConfig is the service's config.yaml from its Secret, loaded as
// sailmaker loads it.
func shippedConfig(t *testing.T, m *manifests, secret, key string) *config.Config {
	t.Helper()
	s := m.secrets[secret]
	require.NotNil(t, s, "Secret %s", secret)
	text, ok := s.StringData[key]
	require.True(t, ok, "Secret %s has %s", secret, key)
	f := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(f, []byte(text), 0o600))
	for _, k := range []string{"SAILMAKER_CONFIG", "SAILMAKER_STATE_DIR", "SAILMAKER_REGISTRY", "BUILDKIT_HOST", "SAILMAKER_WEBHOOK_SECRET", "SAILMAKER_SERVER", "SAILMAKER_TOKEN"} {
		t.Setenv(k, "")
	}
	cfg, err := config.Load(f, "")
	require.NoError(t, err, "the shipped config loads")
	return cfg
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func portNumber(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

// mountName is the name of the volume mount file is on.
func mountName(t *testing.T, c corev1.Container, file string) string {
	t.Helper()
	best := -1
	for i, vm := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/") && (best < 0 || len(vm.MountPath) > len(c.VolumeMounts[best].MountPath)) {
			best = i
		}
	}
	require.GreaterOrEqual(t, best, 0, "%s is on no volume of container %s", file, c.Name)
	return c.VolumeMounts[best].Name
}

// mountedAt is the volume mounted at dir (the longest mount path that is
// dir or a parent of it) and the path under it.
func mountedAt(t *testing.T, spec corev1.PodSpec, c corev1.Container, file string) (corev1.Volume, string) {
	t.Helper()
	best := -1
	for i, vm := range c.VolumeMounts {
		if (file == vm.MountPath || strings.HasPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/")) && (best < 0 || len(vm.MountPath) > len(c.VolumeMounts[best].MountPath)) {
			best = i
		}
	}
	require.GreaterOrEqual(t, best, 0, "%s is on no volume of container %s", file, c.Name)
	vm := c.VolumeMounts[best]
	for _, v := range spec.Volumes {
		if v.Name == vm.Name {
			return v, strings.TrimPrefix(strings.TrimPrefix(file, vm.MountPath), "/")
		}
	}
	t.Fatalf("container %s mounts volume %s, which the pod does not have", c.Name, vm.Name)
	return corev1.Volume{}, ""
}

// secretFile checks that file is a key of a Secret volume, and returns the
// Secret's name and the key.
func secretFile(t *testing.T, spec corev1.PodSpec, c corev1.Container, file string) (string, string) {
	t.Helper()
	v, rel := mountedAt(t, spec, c, file)
	require.NotNil(t, v.Secret, "%s is on volume %s, which is not a Secret", file, v.Name)
	key := rel
	if len(v.Secret.Items) > 0 {
		key = ""
		for _, it := range v.Secret.Items {
			if it.Path == rel {
				key = it.Key
			}
		}
		require.NotEmpty(t, key, "the Secret volume %s does not project %s", v.Name, rel)
	}
	return v.Secret.SecretName, key
}

var quantityRE = regexp.MustCompile(`^\d`)

func atLeast(t *testing.T, got resource.Quantity, want string, what string) {
	t.Helper()
	require.True(t, quantityRE.MatchString(want))
	assert.GreaterOrEqual(t, got.Cmp(resource.MustParse(want)), 0, "%s is %s, want at least %s", what, got.String(), want)
}

func TestManifestsAgreeWithTheirConfig(t *testing.T) {
	m := decodeManifests(t)
	require.Len(t, m.namespaces, 1)
	var ns string
	for n := range m.namespaces {
		ns = n
	}
	for kind, objs := range map[string][]metav1.Object{
		"Secret": objects(m.secrets), "ConfigMap": objects(m.configMaps), "PersistentVolumeClaim": objects(m.pvcs),
		"Service": objects(m.services), "Deployment": objects(m.deployments), "StatefulSet": objects(m.statefulSets),
	} {
		for _, o := range objs {
			assert.Equal(t, ns, o.GetNamespace(), "%s %s is in the namespace", kind, o.GetName())
		}
	}

	// The service.
	dep := m.deployments["sailmaker"]
	require.NotNil(t, dep)
	require.NotNil(t, dep.Spec.Replicas)
	assert.EqualValues(t, 1, *dep.Spec.Replicas, "one service per state directory")
	assert.Equal(t, appsv1.RecreateDeploymentStrategyType, dep.Spec.Strategy.Type, "the old pod lets go of the volume first")
	pod := dep.Spec.Template.Spec
	c := container(t, pod, "sailmaker")
	assert.Equal(t, dep.Spec.Selector.MatchLabels, pickLabels(dep.Spec.Template.Labels, dep.Spec.Selector.MatchLabels))
	require.Equal(t, []string{"serve", "--config", "/etc/sailmaker/config.yaml"}, c.Args)
	secretName, key := secretFile(t, pod, c, "/etc/sailmaker/config.yaml")
	cfg := shippedConfig(t, m, secretName, key)

	_, listenPort, err := net.SplitHostPort(cfg.Server.Listen)
	require.NoError(t, err)
	lp, _ := strconv.Atoi(listenPort)
	require.NotNil(t, c.ReadinessProbe)
	require.NotNil(t, c.ReadinessProbe.HTTPGet)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	assert.EqualValues(t, lp, portNumber(t, c, c.ReadinessProbe.HTTPGet.Port), "readiness on server.listen's port")
	require.NotNil(t, c.LivenessProbe)
	require.NotNil(t, c.LivenessProbe.HTTPGet)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.EqualValues(t, lp, portNumber(t, c, c.LivenessProbe.HTTPGet.Port))
	assert.NotEmpty(t, cfg.Server.Tokens, "listening beyond loopback needs tokens")
	assert.False(t, config.IsLoopback(cfg.Server.Listen), "the service listens for the cluster")

	svc := m.services["sailmaker"]
	require.NotNil(t, svc)
	assert.Equal(t, svc.Spec.Selector, pickLabels(dep.Spec.Template.Labels, svc.Spec.Selector))
	require.Len(t, svc.Spec.Ports, 1)
	assert.EqualValues(t, lp, portNumber(t, c, svc.Spec.Ports[0].TargetPort))

	// The state directory is the claim.
	v, _ := mountedAt(t, pod, c, cfg.StateDir)
	require.NotNil(t, v.PersistentVolumeClaim, "stateDir %s is on a PersistentVolumeClaim", cfg.StateDir)
	require.Contains(t, m.pvcs, v.PersistentVolumeClaim.ClaimName)

	// The webhook secret comes from the Secret.
	var hook *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "SAILMAKER_WEBHOOK_SECRET" {
			hook = &c.Env[i]
		}
	}
	require.NotNil(t, hook, "SAILMAKER_WEBHOOK_SECRET is set")
	require.NotNil(t, hook.ValueFrom.SecretKeyRef)
	require.Contains(t, m.secrets, hook.ValueFrom.SecretKeyRef.Name)
	assert.Contains(t, m.secrets[hook.ValueFrom.SecretKeyRef.Name].StringData, hook.ValueFrom.SecretKeyRef.Key)

	// Images: the internal registry only.
	sts := m.statefulSets["buildkitd"]
	require.NotNil(t, sts)
	wpod := sts.Spec.Template.Spec
	wc := container(t, wpod, "buildkitd")
	for _, img := range []string{c.Image, wc.Image} {
		assert.True(t, strings.HasPrefix(img, cfg.Registry.Address+"/"), "image %s is in the internal registry %s", img, cfg.Registry.Address)
	}

	// The workers: the config's pool is the StatefulSet's pods, by name,
	// through the headless Service, on the port buildkitd listens on with
	// mutual TLS.
	workers := cfg.Workers()
	require.NotNil(t, sts.Spec.Replicas)
	require.Len(t, workers, int(*sts.Spec.Replicas), "one worker per replica")
	head := m.services[sts.Spec.ServiceName]
	require.NotNil(t, head, "the StatefulSet's serviceName %s is a Service", sts.Spec.ServiceName)
	assert.Equal(t, corev1.ClusterIPNone, head.Spec.ClusterIP, "headless: a stable name per worker")
	assert.Equal(t, head.Spec.Selector, pickLabels(sts.Spec.Template.Labels, head.Spec.Selector))
	require.Len(t, head.Spec.Ports, 1)
	workerPort := portNumber(t, wc, head.Spec.Ports[0].TargetPort)
	assert.Equal(t, head.Spec.Ports[0].Port, workerPort)
	args := strings.Join(wc.Args, " ")
	assert.Contains(t, args, fmt.Sprintf("--addr=tcp://0.0.0.0:%d", workerPort))
	for i, w := range workers {
		pn := fmt.Sprintf("%s-%d", sts.Name, i)
		assert.Equal(t, pn, w.Name, "worker %d is pod %s", i, pn)
		u, err := url.Parse(w.Address)
		require.NoError(t, err)
		assert.Equal(t, "tcp", u.Scheme)
		assert.Equal(t, fmt.Sprintf("%s.%s.%s.svc.cluster.local", pn, head.Name, ns), u.Hostname())
		assert.Equal(t, strconv.Itoa(int(workerPort)), u.Port())
		assert.Equal(t, pn, w.ServerName, "the name in the worker's certificate (sailmaker certs new --worker %s)", pn)
		for _, f := range []string{w.CACert, w.Cert, w.Key} {
			name, key := secretFile(t, pod, c, f)
			assert.Equal(t, "sailmaker-buildkit-client", name)
			assert.Contains(t, []string{"ca.pem", "client.pem", "client-key.pem"}, key)
		}
	}
	// Each pod presents the certificate made for its name, from the TLS
	// Secret, and trusts the CA that signed the service's client
	// certificate.
	assert.Contains(t, args, "--tlscert=/certs/$(POD_NAME).pem")
	assert.Contains(t, args, "--tlskey=/certs/$(POD_NAME)-key.pem")
	assert.Contains(t, args, "--tlscacert=/certs/ca.pem")
	tlsVol, _ := mountedAt(t, wpod, wc, "/certs/ca.pem")
	require.NotNil(t, tlsVol.Secret)
	assert.Equal(t, "buildkitd-tls", tlsVol.Secret.SecretName)
	var podName *corev1.EnvVar
	for i := range wc.Env {
		if wc.Env[i].Name == "POD_NAME" {
			podName = &wc.Env[i]
		}
	}
	require.NotNil(t, podName)
	assert.Equal(t, "metadata.name", podName.ValueFrom.FieldRef.FieldPath)

	// Both TLS Secrets are made as docs/deploy.md says.
	deploy, err := os.ReadFile(filepath.Join("..", "docs", "deploy.md"))
	require.NoError(t, err)
	for _, s := range []string{"sailmaker-buildkit-client", "buildkitd-tls"} {
		assert.Regexp(t, `kubectl -n `+ns+` create secret generic `+s+` `, string(deploy))
	}
	assert.Contains(t, string(deploy), "--worker "+strings.Join(workerNames(workers), ","))

	// Rootless, sized for an Istio compile.
	require.NotNil(t, wpod.SecurityContext)
	require.NotNil(t, wpod.SecurityContext.RunAsNonRoot)
	assert.True(t, *wpod.SecurityContext.RunAsNonRoot)
	assert.NotZero(t, *wpod.SecurityContext.RunAsUser)
	atLeast(t, wc.Resources.Requests[corev1.ResourceCPU], "2", "a worker's CPU request")
	atLeast(t, wc.Resources.Requests[corev1.ResourceMemory], "8Gi", "a worker's memory request")
	require.Len(t, sts.Spec.VolumeClaimTemplates, 1)
	atLeast(t, sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage], "50Gi", "a worker's state volume")
	assert.Equal(t, sts.Spec.VolumeClaimTemplates[0].Name, mountName(t, wc, "/home/user/.local/share/buildkit/x"), "BuildKit's rootless state is on the claim")
	for _, p := range []*corev1.Probe{wc.ReadinessProbe, wc.LivenessProbe} {
		require.NotNil(t, p)
		require.NotNil(t, p.Exec)
		assert.Contains(t, strings.Join(p.Exec.Command, " "), "buildctl --addr unix:///run/user/1000/buildkit/buildkitd.sock debug workers")
	}
	assert.Contains(t, args, "--addr=unix:///run/user/1000/buildkit/buildkitd.sock")

	// The workers' buildkitd.toml reaches the registry the service names.
	cmVol, rel := mountedAt(t, wpod, wc, "/etc/buildkit/buildkitd.toml")
	require.NotNil(t, cmVol.ConfigMap)
	toml := m.configMaps[cmVol.ConfigMap.Name].Data[rel]
	require.NotEmpty(t, toml)
	assert.Contains(t, args, "--config=/etc/buildkit/buildkitd.toml")
	if cfg.RegistryInsecure(cfg.Registry.Address) {
		assert.Contains(t, toml, fmt.Sprintf("[registry.%q]\n  http = true", cfg.Registry.Address))
	}
	assert.Equal(t, config.DefaultCacheRepository, cfg.CacheRepository())
}

func workerNames(ws []config.WorkerConfig) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Name)
	}
	return out
}

func objects[T metav1.Object](m map[string]T) []metav1.Object {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]metav1.Object, 0, len(m))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

func pickLabels(all, keys map[string]string) map[string]string {
	out := map[string]string{}
	for k := range keys {
		if v, ok := all[k]; ok {
			out[k] = v
		}
	}
	return out
}
