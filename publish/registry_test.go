package publish_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/builder"
	"github.com/sailmaker/sailmaker/internal/testenv"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

type fixture struct {
	t     *testing.T
	env   *testenv.Env
	store *store.Store
}

func newFixture(t *testing.T) *fixture {
	e := testenv.Registry(t)
	st, err := store.OpenDir(context.Background(), filepath.Join(t.TempDir(), "state"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return &fixture{t: t, env: e, store: st}
}

// image is a random image for repo:tag of the fixture's registry.
func (f *fixture) image(repo, tag string) builder.Image {
	f.t.Helper()
	img, err := random.Image(256, 1)
	require.NoError(f.t, err)
	// OCI media types, as sailmaker's images have.
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	d, err := img.Digest()
	require.NoError(f.t, err)
	tg, err := f.env.Registry.Tag(repo, tag)
	require.NoError(f.t, err)
	return builder.Image{Name: repo[strings.LastIndex(repo, "/")+1:], Tag: tg, Image: img, Digest: d}
}

func (f *fixture) publisher(rc *registry.Client, opts ...publish.RegistryOption) *publish.Registry {
	f.t.Helper()
	p, err := publish.NewRegistry(rc, append([]publish.RegistryOption{publish.WithLedger(f.store)}, opts...)...)
	require.NoError(f.t, err)
	return p
}

func (f *fixture) ledger() []store.Entry {
	f.t.Helper()
	e, err := f.store.Entries(context.Background(), store.LedgerFilter{})
	require.NoError(f.t, err)
	return e
}

func (f *fixture) resolve(t name.Tag) (v1.Hash, bool) {
	f.t.Helper()
	d, ok, err := f.env.Registry.Resolve(context.Background(), t)
	require.NoError(f.t, err)
	return d, ok
}

func actions(entries []store.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Action+" "+e.Repository+":"+e.Tag)
	}
	return out
}

var tr = api.Trigger{Actor: "alice", Kind: api.TriggerCLI, BuildID: "b-1", DeliveryID: "d-9"}

// Tags are immutable: a taken tag refuses the whole publish before anything
// is pushed, and the refusal is recorded; force moves it. Every tag written
// is recorded as an intent before the registry is asked, then confirmed.
func TestRegistryTagPolicyAndLedger(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	p := f.publisher(f.env.Registry)
	a, b := f.image("x/pilot", "1.0"), f.image("x/proxyv2", "1.0")

	out, err := p.Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{a, b}})
	require.NoError(t, err)
	require.Len(t, out, 2)
	for i, im := range []builder.Image{a, b} {
		assert.Equal(t, api.StatusPushed, out[i].Status)
		assert.Equal(t, im.Digest.String(), out[i].Digest)
		assert.Equal(t, im.Tag.Context().Digest(im.Digest.String()).String(), out[i].Reference)
		assert.Positive(t, out[i].BytesUploaded)
		d, ok := f.resolve(im.Tag)
		require.True(t, ok)
		assert.Equal(t, im.Digest, d)
	}
	l := f.ledger()
	assert.Equal(t, []string{"intent x/pilot:1.0", "push x/pilot:1.0", "intent x/proxyv2:1.0", "push x/proxyv2:1.0"}, actions(l))
	assert.Equal(t, store.Entry{ID: l[1].ID, Time: l[1].Time, Actor: "alice", Action: store.ActionPush, Repository: "x/pilot", Tag: "1.0",
		NewDigest: a.Digest.String(), BuildID: "b-1", Note: "delivery d-9"}, l[1])

	// The same again: nothing is written, nothing recorded.
	out, err = p.Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{a, b}})
	require.NoError(t, err)
	assert.Equal(t, api.StatusUnchanged, out[0].Status)
	assert.Zero(t, out[0].BytesUploaded)
	assert.Len(t, f.ledger(), 4)

	// A new tag and a moved one: refused as a whole, recorded.
	a2, c := f.image("x/pilot", "1.0"), f.image("x/other", "1.0")
	_, err = p.Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{c, a2}})
	require.ErrorIs(t, err, registry.ErrTagMoved)
	assert.Contains(t, err.Error(), "--force")
	_, ok := f.resolve(c.Tag)
	assert.False(t, ok, "nothing is tagged when one tag is refused")
	l = f.ledger()
	require.Len(t, l, 5)
	assert.Equal(t, store.ActionRefused, l[4].Action)
	assert.Equal(t, a.Digest.String(), l[4].OldDigest)
	assert.Equal(t, a2.Digest.String(), l[4].NewDigest)

	// Forced: moved, and recorded as such.
	out, err = f.publisher(f.env.Registry, publish.WithForce(true)).Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{a2}})
	require.NoError(t, err)
	assert.Equal(t, api.StatusMoved, out[0].Status)
	assert.Equal(t, a.Digest.String(), out[0].PreviousDigest)
	l = f.ledger()
	assert.Equal(t, []string{"intent x/pilot:1.0", "force x/pilot:1.0"}, actions(l[5:]))
	assert.Equal(t, a.Digest.String(), l[6].OldDigest)

	// A tag that already names the image but that the ledger does not
	// know (tagged by a build that died before recording it) is recorded.
	d := f.image("x/late", "1")
	require.NoError(t, remote.Write(d.Tag, d.Image, f.env.Registry.Remote(ctx)...))
	out, err = p.Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{d}})
	require.NoError(t, err)
	assert.Equal(t, api.StatusUnchanged, out[0].Status)
	l = f.ledger()
	assert.Equal(t, "push x/late:1", actions(l)[len(l)-1])
	assert.Contains(t, l[len(l)-1].Note, "recorded by a later build")
}

// faulty fails requests that match, after (or instead of) sending them.
type faulty struct {
	base    http.RoundTripper
	match   *regexp.Regexp
	method  string
	forward bool // send the request, then fail as if the answer was lost
	drop    bool // fail without sending the request, as a dropped connection
	status  int  // else answer with this status
	hits    atomic.Int32
}

func (f *faulty) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != f.method || !f.match.MatchString(r.URL.Path) {
		return f.base.RoundTrip(r)
	}
	f.hits.Add(1)
	if f.drop {
		return nil, errors.New("connection reset by peer")
	}
	if f.forward {
		resp, err := f.base.RoundTrip(r)
		if err == nil {
			resp.Body.Close()
		}
		return nil, errors.New("connection reset by peer")
	}
	return &http.Response{StatusCode: f.status, Status: http.StatusText(f.status), Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

func (f *fixture) faultyClient(tp *faulty) *registry.Client {
	tp.base = remote.DefaultTransport
	rc, err := registry.NewClient(f.env.Config, registry.WithTransport(tp))
	require.NoError(f.t, err)
	return rc
}

// A tag PUT the registry refuses ends the publish; what was tagged before
// is reported and recorded, the refused tag's intent is abandoned, and no
// tag is in the registry without the ledger knowing it.
func TestRegistryTagRefusedMidway(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tp := &faulty{method: http.MethodPut, match: regexp.MustCompile(`/x/proxyv2/manifests/1\.0$`), status: http.StatusServiceUnavailable}
	p := f.publisher(f.faultyClient(tp))
	a, b := f.image("x/pilot", "1.0"), f.image("x/proxyv2", "1.0")
	out, err := p.Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{a, b}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tagging "+b.Tag.String())
	require.Len(t, out, 1, "the build's record lists the image it tagged")
	assert.Equal(t, "pilot", out[0].Name)
	_, ok := f.resolve(b.Tag)
	assert.False(t, ok)
	assert.Equal(t, []string{"intent x/pilot:1.0", "push x/pilot:1.0", "intent x/proxyv2:1.0", "abandoned x/proxyv2:1.0"}, actions(f.ledger()))
	pending, err := f.store.PendingIntents(ctx)
	require.NoError(t, err)
	assert.Empty(t, pending)
}

// A tag PUT whose answer is lost (the connection drops after the registry
// took it) is read back: the tag is written, so it is confirmed.
func TestRegistryLostAnswerIsConfirmed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tp := &faulty{method: http.MethodPut, match: regexp.MustCompile(`/x/pilot/manifests/1\.0$`), forward: true}
	p := f.publisher(f.faultyClient(tp))
	a := f.image("x/pilot", "1.0")
	out, err := p.Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{a}})
	require.NoError(t, err)
	assert.Positive(t, tp.hits.Load())
	assert.Equal(t, api.StatusPushed, out[0].Status)
	d, ok := f.resolve(a.Tag)
	require.True(t, ok)
	assert.Equal(t, a.Digest, d)
	assert.Equal(t, []string{"intent x/pilot:1.0", "push x/pilot:1.0"}, actions(f.ledger()))
}

// A tag write that got no answer (the connection dropped before the
// registry saw it, or the build was cancelled) and whose tag is not there
// when read back leaves its intent pending, not abandoned: the request
// may still reach the registry later. When it does, the ledger accounts
// for the tag, and Reconcile confirms it for its build.
func TestRegistryNoAnswerLeavesIntentPending(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tp := &faulty{method: http.MethodPut, match: regexp.MustCompile(`/x/pilot/manifests/1\.0$`), drop: true}
	p := f.publisher(f.faultyClient(tp))
	a := f.image("x/pilot", "1.0")
	_, err := p.Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{a}})
	require.Error(t, err)
	_, ok := f.resolve(a.Tag)
	require.False(t, ok)
	assert.Equal(t, []string{"intent x/pilot:1.0"}, actions(f.ledger()))

	// The write lands late.
	require.NoError(t, remote.Tag(a.Tag, a.Image, f.env.Registry.Remote(ctx)...))
	tags, err := f.store.Tags(ctx)
	require.NoError(t, err)
	assert.True(t, tags["x/pilot:1.0"].Names(a.Digest.String()), "the ledger accounts for the late tag")
	confirmed, err := f.publisher(f.env.Registry, publish.WithSettleAfter(0)).Reconcile(ctx)
	require.NoError(t, err)
	require.Len(t, confirmed, 1)
	assert.Equal(t, "b-1", confirmed[0].BuildID)
	assert.Equal(t, []string{"intent x/pilot:1.0", "push x/pilot:1.0"}, actions(f.ledger()))
}

// Intents left by a process that died between asking the registry and
// recording its answer are settled by the next publish: confirmed when the
// tag names the intended digest, abandoned otherwise.
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	written, lost, young := f.image("x/written", "1"), f.image("x/lost", "1"), f.image("x/young", "1")
	require.NoError(t, remote.Write(written.Tag, written.Image, f.env.Registry.Remote(ctx)...))
	long := time.Now().Add(-time.Hour)
	for _, im := range []builder.Image{written, lost, young} {
		at := long
		if im.Name == "young" {
			at = time.Now()
		}
		require.NoError(t, f.store.Append(ctx, store.Entry{Actor: "bob", Action: store.ActionIntent, BuildID: "b-0", Time: at,
			Repository: im.Tag.RepositoryStr(), Tag: im.Tag.TagStr(), NewDigest: im.Digest.String()}))
	}
	tags, err := f.store.Tags(ctx)
	require.NoError(t, err)
	assert.True(t, tags["x/written:1"].Names(written.Digest.String()), "a pending intent accounts for the tag")
	assert.Empty(t, tags["x/written:1"].Digest, "but confirms nothing")

	confirmed, err := f.publisher(f.env.Registry).Reconcile(ctx)
	require.NoError(t, err)
	require.Len(t, confirmed, 1)
	assert.Equal(t, "x/written", confirmed[0].Repository)
	l := f.ledger()
	assert.Equal(t, []string{"intent x/written:1", "intent x/lost:1", "intent x/young:1", "push x/written:1", "abandoned x/lost:1"}, actions(l),
		"an intent younger than the settle time stays pending: its write may still be on its way")
	assert.Equal(t, "b-0", l[3].BuildID, "confirmed for the build that meant it")
	assert.Contains(t, l[3].Note, "confirmed later")
	pending, err := f.store.PendingIntents(ctx)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	assert.Equal(t, "x/young", pending[0].Repository)
	tags, err = f.store.Tags(ctx)
	require.NoError(t, err)
	assert.Equal(t, written.Digest.String(), tags["x/written:1"].Digest)
	_, known := tags["x/lost:1"]
	assert.False(t, known)
}

// The registry is the builder's cache: an image is found only when its
// tag names an image built from the same inputs and attested (signed,
// when signing is required).
func TestRegistryLookup(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	im := f.image("x/pilot", "1.0")
	key := testKey(t)
	plan := builder.Plan{InputsKey: "sha256:" + strings.Repeat("1", 64), Targets: []builder.Target{{Name: "pilot", Tag: im.Tag}}}
	p := f.publisher(f.env.Registry)
	_, ok, err := p.Lookup(ctx, plan)
	require.NoError(t, err)
	assert.False(t, ok, "not there")

	im = withLabel(t, im, builder.LabelInputs, plan.InputsKey)
	im.Attestations = documents(t, im)
	_, err = p.Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{im}})
	require.NoError(t, err)
	found, ok, err := p.Lookup(ctx, plan)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, im.Digest, found[0].Digest)
	assert.Contains(t, found[0].Attached, attest.ProvenanceArtifactType)

	other := plan
	other.InputsKey = "sha256:" + strings.Repeat("2", 64)
	_, ok, err = p.Lookup(ctx, other)
	require.NoError(t, err)
	assert.False(t, ok, "other inputs")

	signedOnly := f.publisher(f.env.Registry, publish.RequireSigned(true))
	_, ok, err = signedOnly.Lookup(ctx, plan)
	require.NoError(t, err)
	assert.False(t, ok, "unsigned attestations do not do when signing is on")
	sout, err := publish.Signed(signedOnly, key).Publish(ctx, &builder.Result{Trigger: tr, Images: []builder.Image{im}})
	require.NoError(t, err)
	have, err := f.env.Registry.Attached(ctx, im.Tag.Context().Digest(im.Digest.String()))
	require.NoError(t, err)
	assert.Equal(t, sout[0].Provenance, have[attest.ProvenanceArtifactType].Digest.String(), "the signed provenance wins over the older unsigned one")
	_, ok, err = signedOnly.Lookup(ctx, plan)
	require.NoError(t, err)
	assert.True(t, ok, "signed now")
}

var _ = time.Second
