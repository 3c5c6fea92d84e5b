package main

import (
	"fmt"
	"strings"

	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/recipes"
)

// knownArches are the architectures an --envoy-sha256 or --envoy-file may
// name (ARCH=VALUE).
var knownArches = []string{"amd64", "arm64"}

// splitArch reads [ARCH=]VALUE: an architecture only when VALUE is
// prefixed by a known one (a file name may hold "=").
func splitArch(v string) (arch, value string) {
	for _, a := range knownArches {
		if rest, ok := strings.CutPrefix(v, a+"="); ok {
			return a, rest
		}
	}
	return "", v
}

// parseEnvoy reads --envoy-sha256 and --envoy-file: a value without an
// architecture is amd64's (the recipe's inputs.envoy), ARCH=VALUE another
// one's; each at most once.
func (o *buildOptions) parseEnvoy() error {
	o.envoyByArch = nil
	set := func(flag, v string, put func(*builder.EnvoyOverride, string) bool) error {
		a, val := splitArch(v)
		if val == "" {
			return fmt.Errorf("--%s %q: no value", flag, v)
		}
		if a == "" {
			a = recipes.DefaultArch
		}
		if o.envoyByArch == nil {
			o.envoyByArch = map[string]builder.EnvoyOverride{}
		}
		x := o.envoyByArch[a]
		if !put(&x, val) {
			return fmt.Errorf("--%s: %s's is given twice", flag, a)
		}
		o.envoyByArch[a] = x
		return nil
	}
	for _, v := range o.envoySHA256s {
		if err := set("envoy-sha256", v, func(x *builder.EnvoyOverride, val string) bool {
			if x.SHA256 != "" {
				return false
			}
			x.SHA256 = strings.ToLower(val)
			return true
		}); err != nil {
			return err
		}
	}
	for _, v := range o.envoyFiles {
		if err := set("envoy-file", v, func(x *builder.EnvoyOverride, val string) bool {
			if x.File != "" {
				return false
			}
			x.File = val
			return true
		}); err != nil {
			return err
		}
	}
	// amd64's are the request's own fields, as before architectures.
	if x, ok := o.envoyByArch[recipes.DefaultArch]; ok {
		o.envoyFile, o.envoySHA256 = x.File, x.SHA256
		delete(o.envoyByArch, recipes.DefaultArch)
	}
	if len(o.envoyByArch) == 0 {
		o.envoyByArch = nil
	}
	for a, x := range o.envoyByArch {
		if x.SHA256 != "" && len(x.SHA256) != 64 {
			return fmt.Errorf("--envoy-sha256 %s=%s: must be 64 hex digits", a, x.SHA256)
		}
	}
	if o.envoySHA256 != "" && len(o.envoySHA256) != 64 {
		return fmt.Errorf("--envoy-sha256 %s: must be 64 hex digits", o.envoySHA256)
	}
	return nil
}

// envoySHA256ByArch are the other architectures' sha256 overrides, as the
// service takes them.
func (o *buildOptions) envoySHA256ByArch() map[string]string {
	var out map[string]string
	for a, x := range o.envoyByArch {
		if x.SHA256 == "" {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[a] = x.SHA256
	}
	return out
}
