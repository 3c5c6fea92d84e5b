package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/registry"
)

const (
	indexMediaType = "application/vnd.oci.image.index.v1+json"
	ociManifest    = "application/vnd.oci.image.manifest.v1+json"
)

type referrersIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     []v1.Descriptor `json:"manifests"`
}

func serve(t *testing.T, root string) *registry.Server {
	t.Helper()
	s, err := registry.NewServer(context.Background(), root)
	require.NoError(t, err)
	require.NoError(t, s.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	// Before the close: shutdown waits 5 s for connections that never
	// carried a request, spares of concurrent clients.
	t.Cleanup(func() {
		remote.DefaultTransport.(*http.Transport).CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
	})
	return s
}

// pushSubject pushes a random image to addr/repo:v1 and returns it by digest
// with its descriptor.
func pushSubject(t *testing.T, addr, repo string) (name.Digest, v1.Descriptor) {
	t.Helper()
	img, err := random.Image(256, 1)
	require.NoError(t, err)
	tag, err := name.NewTag(addr+"/"+repo+":v1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, img))
	desc, err := partial.Descriptor(img)
	require.NoError(t, err)
	return tag.Context().Digest(desc.Digest.String()), *desc
}

// attachTo pushes an artifact of artifactType whose subject is subject,
// with go-containerregistry, by digest.
func attachTo(t *testing.T, subject name.Digest, desc v1.Descriptor, artifactType, doc string) v1.Descriptor {
	t.Helper()
	a, err := attest.Attachment(desc, artifactType, "test", []byte(doc), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	require.NoError(t, err)
	ad, err := partial.Descriptor(a)
	require.NoError(t, err)
	require.NoError(t, remote.Write(subject.Context().Digest(ad.Digest.String()), a))
	return *ad
}

func getReferrers(t *testing.T, addr, repo, subject, query string) (*http.Response, referrersIndex) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v2/" + repo + "/referrers/" + subject + query)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var idx referrersIndex
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &idx), string(body))
		assert.Contains(t, string(body), `"manifests":[`, "manifests is a list, never null")
	}
	return resp, idx
}

func digests(idx referrersIndex) []string {
	out := []string{}
	for _, d := range idx.Manifests {
		out = append(out, d.Digest.String())
	}
	return out
}

func tags(t *testing.T, repo name.Repository) []string {
	t.Helper()
	l, err := remote.List(repo)
	require.NoError(t, err)
	return l
}

// The referrers API as the distribution-spec says: listed with media type,
// size, artifactType and annotations, filtered by artifactType, an empty
// index for a subject without referrers, OCI-Subject on the PUT, removed
// on delete; and go-containerregistry keeps no fallback tag.
func TestReferrersAPI(t *testing.T) {
	s := serve(t, t.TempDir())
	addr := s.Addr()
	subject, desc := pushSubject(t, addr, "team/app")
	prov := attachTo(t, subject, desc, "application/vnd.in-toto+json", `{"n":1}`)
	sbom := attachTo(t, subject, desc, "application/spdx+json", `{}`)

	resp, idx := getReferrers(t, addr, "team/app", desc.Digest.String(), "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, indexMediaType, resp.Header.Get("Content-Type"))
	assert.Empty(t, resp.Header.Get("OCI-Filters-Applied"))
	assert.Equal(t, 2, idx.SchemaVersion)
	assert.Equal(t, indexMediaType, idx.MediaType)
	require.Len(t, idx.Manifests, 2)
	byType := map[string]v1.Descriptor{}
	for _, d := range idx.Manifests {
		byType[d.ArtifactType] = d
	}
	for _, want := range []v1.Descriptor{prov, sbom} {
		got, ok := byType[want.ArtifactType]
		require.True(t, ok, want.ArtifactType)
		assert.Equal(t, want.Digest, got.Digest)
		assert.Equal(t, want.Size, got.Size)
		assert.EqualValues(t, ociManifest, got.MediaType)
		assert.Equal(t, "2026-01-02T03:04:05Z", got.Annotations["org.opencontainers.image.created"])
	}

	// Filtered, and saying so.
	resp, idx = getReferrers(t, addr, "team/app", desc.Digest.String(), "?artifactType=application/spdx%2Bjson")
	assert.Equal(t, "artifactType", resp.Header.Get("OCI-Filters-Applied"))
	assert.Equal(t, []string{sbom.Digest.String()}, digests(idx))
	resp, idx = getReferrers(t, addr, "team/app", desc.Digest.String(), "?artifactType=application/none")
	assert.Equal(t, "artifactType", resp.Header.Get("OCI-Filters-Applied"))
	assert.Empty(t, idx.Manifests)

	// No referrers, unknown subject, unknown repository: an empty index.
	for _, q := range [][2]string{{"team/app", prov.Digest.String()}, {"team/app", "sha256:" + strings.Repeat("0", 64)}, {"no/such", desc.Digest.String()}} {
		resp, idx = getReferrers(t, addr, q[0], q[1], "")
		assert.Equal(t, http.StatusOK, resp.StatusCode, q)
		assert.Equal(t, indexMediaType, resp.Header.Get("Content-Type"), q)
		assert.Empty(t, idx.Manifests, q)
	}
	// Bad input.
	resp, _ = getReferrers(t, addr, "team/app", "sha256:nothex", "")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = getReferrers(t, addr, "Team/App", desc.Digest.String(), "")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v2/team/app/referrers/"+desc.Digest.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	// go-containerregistry saw the API: no fallback tag; its Referrers
	// reads the API.
	assert.Equal(t, []string{"v1"}, tags(t, subject.Context()))
	ggcr, err := remote.Referrers(subject)
	require.NoError(t, err)
	im, err := ggcr.IndexManifest()
	require.NoError(t, err)
	assert.Len(t, im.Manifests, 2)

	// A manifest PUT with a subject answers OCI-Subject; one without does
	// not.
	a, err := attest.Attachment(desc, "application/x-other", "test", []byte("x"), time.Now())
	require.NoError(t, err)
	require.NoError(t, remote.Write(subject.Context().Tag("other"), a)) // blobs and the manifest
	raw, err := a.RawManifest()
	require.NoError(t, err)
	resp = putManifest(t, addr, "team/app", "other2", ociManifest, raw)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, desc.Digest.String(), resp.Header.Get("OCI-Subject"))
	plain, err := remote.Get(subject)
	require.NoError(t, err)
	resp = putManifest(t, addr, "team/app", "v2", string(plain.MediaType), plain.Manifest)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("OCI-Subject"))

	// Deleting a referrer removes it from the list; deleting a tag of one
	// does not.
	ad, err := a.Digest()
	require.NoError(t, err)
	_, idx = getReferrers(t, addr, "team/app", desc.Digest.String(), "")
	assert.Contains(t, digests(idx), ad.String())
	require.NoError(t, remote.Delete(subject.Context().Tag("other")))
	_, idx = getReferrers(t, addr, "team/app", desc.Digest.String(), "")
	assert.Contains(t, digests(idx), ad.String(), "a tag delete leaves the manifest")
	assert.Contains(t, indexEntries(t, s.Root(), "team/app"), ad.Hex)
	require.NoError(t, remote.Delete(subject.Context().Digest(ad.String())))
	_, idx = getReferrers(t, addr, "team/app", desc.Digest.String(), "")
	assert.ElementsMatch(t, []string{prov.Digest.String(), sbom.Digest.String()}, digests(idx))
	assert.NotContains(t, indexEntries(t, s.Root(), "team/app"), ad.Hex, "removed from the index on disk")
}

// indexEntries lists the referrer entries of repo in the index on disk.
func indexEntries(t *testing.T, root, repo string) string {
	t.Helper()
	entries, err := filepath.Glob(filepath.Join(root, "referrers", "repositories", filepath.FromSlash(repo), "_subjects", "*", "*", "*.json"))
	require.NoError(t, err)
	return strings.Join(entries, "\n")
}

func putManifest(t *testing.T, addr, repo, ref, mediaType string, raw []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(raw))
	require.NoError(t, err)
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// A refused manifest leaves nothing in the index: its subject has no
// referrers.
func TestReferrersRefusedManifestNotListed(t *testing.T) {
	s := serve(t, t.TempDir())
	_, desc := pushSubject(t, s.Addr(), "team/app")
	a, err := attest.Attachment(desc, "application/x-other", "test", []byte("x"), time.Now())
	require.NoError(t, err)
	raw, err := a.RawManifest()
	require.NoError(t, err)
	resp := putManifest(t, s.Addr(), "team/app", "x", ociManifest, raw) // its blobs were never pushed
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("OCI-Subject"))
	_, idx := getReferrers(t, s.Addr(), "team/app", desc.Digest.String(), "")
	assert.Empty(t, idx.Manifests)
	assert.Empty(t, indexEntries(t, s.Root(), "team/app"), "the write-ahead entry is removed")
}

// The index survives restarts, is rebuilt from the stored manifests when it
// is lost, and drops entries whose manifest is gone.
func TestReferrersIndexRebuilt(t *testing.T) {
	root := t.TempDir()
	s := serve(t, root)
	subject, desc := pushSubject(t, s.Addr(), "team/app")
	other, odesc := pushSubject(t, s.Addr(), "team/other")
	prov := attachTo(t, subject, desc, "application/vnd.in-toto+json", `{"n":1}`)
	sbom := attachTo(t, subject, desc, "application/spdx+json", `{}`)
	oprov := attachTo(t, other, odesc, "application/vnd.in-toto+json", `{"n":2}`)
	want := []string{prov.Digest.String(), sbom.Digest.String()}
	require.NoError(t, s.Close(context.Background()))

	// Restart: the same.
	s = serve(t, root)
	_, idx := getReferrers(t, s.Addr(), "team/app", desc.Digest.String(), "")
	assert.ElementsMatch(t, want, digests(idx))
	require.NoError(t, s.Close(context.Background()))

	// Lost: rebuilt, across repositories.
	require.NoError(t, os.RemoveAll(filepath.Join(root, "referrers")))
	s = serve(t, root)
	_, idx = getReferrers(t, s.Addr(), "team/app", desc.Digest.String(), "")
	assert.ElementsMatch(t, want, digests(idx))
	_, idx = getReferrers(t, s.Addr(), "team/other", odesc.Digest.String(), "")
	assert.Equal(t, []string{oprov.Digest.String()}, digests(idx))
	require.NoError(t, s.Close(context.Background()))

	// An entry whose manifest is not stored (a crash between the
	// write-ahead and the PUT) is not listed, and removed at the next
	// start.
	ghost := "sha256:" + strings.Repeat("ab", 32)
	dir := filepath.Join(root, "referrers", "repositories", "team", "app", "_subjects", "sha256", desc.Digest.Hex)
	entry := filepath.Join(dir, "sha256-"+strings.Repeat("ab", 32)+".json")
	require.NoError(t, os.WriteFile(entry, []byte(fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":10}`, ghost)), 0o644))
	s = serve(t, root)
	_, idx = getReferrers(t, s.Addr(), "team/app", desc.Digest.String(), "")
	assert.ElementsMatch(t, want, digests(idx))
	assert.NoFileExists(t, entry)
}

// Concurrent pushes of referrers of one subject all land in the index; a
// PUT racing a DELETE of the same referrer leaves the index agreeing with
// storage.
func TestReferrersConcurrent(t *testing.T) {
	s := serve(t, t.TempDir())
	subject, desc := pushSubject(t, s.Addr(), "team/app")
	const n = 24
	var wg sync.WaitGroup
	want := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := attest.Attachment(desc, fmt.Sprintf("application/x-%d", i), "test", []byte(fmt.Sprint(i)), time.Now())
			if !assert.NoError(t, err) {
				return
			}
			d, _ := a.Digest()
			want[i] = d.String()
			assert.NoError(t, remote.Write(subject.Context().Digest(d.String()), a))
		}()
	}
	wg.Wait()
	_, idx := getReferrers(t, s.Addr(), "team/app", desc.Digest.String(), "")
	assert.ElementsMatch(t, want, digests(idx))

	a, err := attest.Attachment(desc, "application/x-race", "test", []byte("race"), time.Now())
	require.NoError(t, err)
	ad, _ := a.Digest()
	ref := subject.Context().Digest(ad.String())
	require.NoError(t, remote.Write(ref, a))
	raw, _ := a.RawManifest()
	for range 10 {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); putManifest(t, s.Addr(), "team/app", ad.String(), ociManifest, raw) }()
		go func() { defer wg.Done(); _ = remote.Delete(ref) }()
		wg.Wait()
		_, err := remote.Head(ref)
		stored := err == nil
		_, idx := getReferrers(t, s.Addr(), "team/app", desc.Digest.String(), "?artifactType=application/x-race")
		assert.Equal(t, stored, len(idx.Manifests) == 1, "listed if and only if stored")
	}
}
