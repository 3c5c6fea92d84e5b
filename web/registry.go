package web

import (
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/sailmaker/sailmaker/audit"
)

// registryTimeout bounds one page's reads of the registry.
const registryTimeout = 2 * time.Minute

type repoGroup struct {
	Repository string
	Images     []audit.Image
}

type registryData struct {
	Filter   audit.Filter
	Registry string
	Repos    []repoGroup
	// Packages are the Debian packages among the images (OCI artifacts of
	// the .debs builds made), listed on their own first.
	Packages []audit.Image
	Count    int
	Warnings audit.Warnings
	Error    string
}

// registryPage lists every repository and tag, as `audit images` does.
func (h *Handler) registryPage(w http.ResponseWriter, r request) {
	q := r.URL.Query()
	d := registryData{Filter: audit.Filter{
		Repository: strings.TrimSpace(q.Get("repository")), Version: strings.TrimSpace(q.Get("version")),
		Commit: strings.TrimSpace(q.Get("commit")), Base: strings.TrimSpace(q.Get("base")),
	}}
	c, cancel := withTimeout(r, registryTimeout)
	defer cancel()
	res, err := h.aud.Images(c, d.Filter)
	if err != nil {
		status := auditStatus(err)
		if status == http.StatusBadRequest {
			d.Error = err.Error()
			h.render(w, status, "registry", h.view(r.s, "Registry", "registry", d))
			return
		}
		h.errorPage(w, r.Request, r.s, status, "Reading the registry failed: "+err.Error())
		return
	}
	d.Registry, d.Warnings, d.Count = res.Registry, res.Warnings, len(res.Images)
	byRepo := map[string]*repoGroup{}
	for _, im := range res.Images {
		if im.Kind == audit.KindPackage && im.Package != nil {
			d.Packages = append(d.Packages, im)
		}
		g := byRepo[im.Repository]
		if g == nil {
			g = &repoGroup{Repository: im.Repository}
			byRepo[im.Repository] = g
		}
		g.Images = append(g.Images, im)
	}
	for _, g := range byRepo {
		d.Repos = append(d.Repos, *g)
	}
	sort.Slice(d.Repos, func(i, j int) bool { return d.Repos[i].Repository < d.Repos[j].Repository })
	h.render(w, http.StatusOK, "registry", h.view(r.s, "Registry", "registry", d))
}

func auditStatus(err error) int {
	switch {
	case errors.Is(err, audit.ErrBadInput):
		return http.StatusBadRequest
	case errors.Is(err, audit.ErrNotFound):
		return http.StatusNotFound
	}
	return http.StatusBadGateway
}

type imageData struct {
	Ref    string
	Detail *audit.Detail
	Labels [][2]string
	// Query filters the SBOM's modules and packages.
	Query    string
	Modules  []audit.Package
	Packages []audit.Package
}

// imagePage shows one image, as `audit show` does: labels, provenance,
// SBOM, signature, ledger history and findings.
func (h *Handler) imagePage(w http.ResponseWriter, r request) {
	ref := strings.TrimSpace(r.URL.Query().Get("image"))
	if ref == "" {
		h.errorPage(w, r.Request, r.s, http.StatusBadRequest, "Which image? Give image=repository:tag or repository@digest.")
		return
	}
	c, cancel := withTimeout(r, registryTimeout)
	defer cancel()
	det, err := h.aud.Show(c, ref)
	if err != nil {
		h.errorPage(w, r.Request, r.s, auditStatus(err), err.Error())
		return
	}
	d := imageData{Ref: ref, Detail: det, Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	for k, v := range det.Labels {
		d.Labels = append(d.Labels, [2]string{k, v})
	}
	sort.Slice(d.Labels, func(i, j int) bool { return d.Labels[i][0] < d.Labels[j][0] })
	if det.SBOM != nil {
		d.Modules = matching(det.SBOM.GoModules, d.Query)
		d.Packages = matching(det.SBOM.DebianPackages, d.Query)
	}
	h.render(w, http.StatusOK, "image", h.view(r.s, det.Image.Name(), "registry", d))
}

// matching is the packages whose name, version or purl contain q (any
// case).
func matching(pkgs []audit.Package, q string) []audit.Package {
	if q == "" {
		return pkgs
	}
	q = strings.ToLower(q)
	var out []audit.Package
	for _, p := range pkgs {
		if strings.Contains(strings.ToLower(p.Name), q) || strings.Contains(strings.ToLower(p.Version), q) || strings.Contains(strings.ToLower(p.PURL), q) {
			out = append(out, p)
		}
	}
	return out
}

// verifyPage shows what `audit verify` finds.
func (h *Handler) verifyPage(w http.ResponseWriter, r request) {
	c, cancel := withTimeout(r, registryTimeout)
	defer cancel()
	rep, err := h.aud.Verify(c)
	if err != nil {
		h.errorPage(w, r.Request, r.s, auditStatus(err), "Verifying the registry failed: "+err.Error())
		return
	}
	h.render(w, http.StatusOK, "verify", h.view(r.s, "Verify", "verify", rep))
}
