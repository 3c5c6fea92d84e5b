package istio

import (
	"fmt"

	"github.com/sailmaker/sailmaker/packaging/deb"
)

// CNIPackageName is the istio-cni package's name.
const CNIPackageName = "istio-cni"

// CNIPluginPath is where kubelet's container runtime looks for CNI plugins,
// and where upstream's install-cni copies the plugin.
const CNIPluginPath = "/opt/cni/bin/istio-cni"

// CNI is the input of CNIPackage.
type CNI struct {
	// Version is the Istio release the plugin was built from, e.g. 1.24.2.
	Version string
	// Revision is the Debian revision (default "1"); raise it when the
	// package changes for the same release (a new patch in the recipe).
	Revision string
	// Architecture is the Debian architecture (default amd64); the plugin
	// must be built for it.
	Architecture string
	// Plugin is the built plugin (upstream's out/linux_<arch>/istio-cni).
	Plugin string
	// Maintainer is "Full Name <email>".
	Maintainer string
	// Source is where the plugin came from; Source.Time is required.
	Source Source
}

// What upstream's install-cni does on a node besides copying the plugin, and
// what this package does instead (read from istio 1.24.2, cni/pkg/install):
//
//   - it copies every file of the image's /opt/cni/bin (only istio-cni) to
//     the host's /opt/cni/bin: this package installs it there;
//   - it writes a kubeconfig holding the DaemonSet's service-account token to
//     /var/run/istio-cni/istio-cni-kubeconfig, which the plugin reads to look
//     up pods: a per-node secret, so not in a package (README.Debian says
//     what to provide);
//   - it inserts an "istio-cni" entry into the node's primary CNI
//     configuration (a .conflist in /etc/cni/net.d that belongs to another
//     CNI): a package must not edit another package's configuration, so the
//     package ships the entry as an example;
//   - the plugin runs iptables-save/iptables-restore in each pod's network
//     namespace (sidecar mode), from the host: hence Depends: iptables.
//
// install-cni itself (the node agent, needed for ambient mode) runs in the
// DaemonSet and needs the cluster's API; it is not in this package.
const cniReadme = `istio-cni for Debian
====================

This package installs Istio's CNI plugin where the container runtime looks
for CNI plugins:

    /opt/cni/bin/istio-cni

Upstream installs the plugin with the istio-cni DaemonSet (install-cni),
which runs privileged on every node. With this package the plugin comes
from the node's own packages instead. The DaemonSet did three more things
that remain to be done on the node (by your configuration management) for
sidecar mode:

1. Add the plugin to the node's primary CNI configuration: insert the entry
   in /usr/share/doc/istio-cni/examples/istio-cni.conflist-entry.json at the
   end of the "plugins" list of the .conflist in /etc/cni/net.d that the
   runtime uses (the first one in sort order). The package does not edit
   that file: it belongs to the cluster's primary CNI.

2. Provide the kubeconfig the plugin uses to look up pods, at
   /var/run/istio-cni/istio-cni-kubeconfig (mode 0600), for a service
   account allowed to get pods (the istio-cni chart's ClusterRole). It holds
   a credential, so no package carries it.

3. Keep the pods of the control plane out of redirection with the entry's
   "exclude_namespaces" (kube-system by default; add istio-system if the
   control plane runs there).

The plugin runs iptables-save and iptables-restore in each pod's network
namespace, from the host; hence the dependency on iptables.

Ambient mode needs the istio-cni node agent (install-cni) running in the
cluster; this package does not replace it.
`

// cniConflistEntry is the plugin entry upstream's install-cni writes
// (cni/pkg/install/cniconfig.go, sidecar mode, the chart's defaults).
const cniConflistEntry = `{
  "cniVersion": "0.3.1",
  "name": "istio-cni",
  "type": "istio-cni",
  "plugin_log_level": "info",
  "cni_agent_run_dir": "/var/run/istio-cni",
  "ambient_enabled": false,
  "exclude_namespaces": [
    "kube-system"
  ]
}
`

// CNIPackage checks c and returns the istio-cni package: the plugin at
// /opt/cni/bin/istio-cni (0755), README.Debian and an example CNI
// configuration entry, the copyright file and changelog; Depends: iptables.
// The plugin must be a Go program named istio-cni built for linux and the
// package's architecture. Build it with deb.Build.
func CNIPackage(c CNI) (*deb.Package, error) {
	var errs deb.ValidationError
	if c.Revision == "" {
		c.Revision = "1"
	}
	if c.Architecture == "" {
		c.Architecture = "amd64"
	}
	upstream, err := DebianVersion(c.Version)
	if err != nil {
		errs = append(errs, fieldErr("version", c.Version, "%v", err))
	}
	version := upstream + "-" + c.Revision
	if err == nil {
		if verr := deb.CheckVersion(version); verr != nil {
			errs = append(errs, fieldErr("revision", c.Revision, "gives the Debian version %q: %v", version, verr))
		}
	}
	if c.Source.Time.IsZero() {
		errs = append(errs, fieldErr("source.time", "", "not set; give the source's commit time"))
	}
	if _, err := checkBinary("plugin", c.Plugin, "istio-cni", c.Architecture); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	p := &deb.Package{
		Name:         CNIPackageName,
		Version:      version,
		Architecture: c.Architecture,
		Maintainer:   c.Maintainer,
		Synopsis:     "Istio CNI plugin for Kubernetes nodes",
		Description: `The Istio CNI plugin sets up traffic redirection for pods of the Istio
service mesh while their network is created, so that the pods need no
privileged istio-init container.

This package installs the plugin in /opt/cni/bin for nodes that take it
from their own packages instead of from the istio-cni DaemonSet.
README.Debian lists what the node still needs: the plugin's entry in the
CNI configuration and a kubeconfig for it.

Built from Istio ` + c.Version + `.`,
		Section:  "net",
		Priority: "optional",
		Homepage: Homepage,
		Depends:  []string{"iptables"},
		Files: []deb.File{
			{Dest: CNIPluginPath, Source: c.Plugin, Mode: 0o755},
			{Dest: "/usr/share/doc/" + CNIPackageName + "/README.Debian", Data: []byte(cniReadme), Mode: 0o644},
			{Dest: "/usr/share/doc/" + CNIPackageName + "/examples/istio-cni.conflist-entry.json", Data: []byte(cniConflistEntry), Mode: 0o644},
		},
		Copyright: apacheCopyright(c.Source, "The Istio CNI plugin (cni/cmd/istio-cni),", c.Source.Time.UTC().Year()),
		LintianOverrides: []deb.LintianOverride{
			{Tag: "dir-or-file-in-opt", Context: "opt/cni/*", Reason: "/opt/cni/bin is where container runtimes look for CNI plugins (containerd's and CRI-O's default) and where upstream installs istio-cni; this package is not for the Debian archive"},
			{Tag: "statically-linked-binary", Context: CNIPluginPath[1:], Reason: goStaticReason},
		},
		Changes: []string{fmt.Sprintf("Istio %s built by sailmaker from %s.", c.Version, sourceOr(c.Source, "the pinned upstream source"))},
		MTime:   c.Source.Time,
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func sourceOr(s Source, fallback string) string {
	if str := s.String(); str != "" {
		return str
	}
	return fallback
}
