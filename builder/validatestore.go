package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	cerrdefs "github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"
)

// validationStore is the content store BuildKit reads the images to
// validate from, through the session (llb.OCILayout from an OCI store).
// Nothing is written up front. Manifests and configs are served from
// memory; a layer whose bytes are a file on this machine (the layer
// sailmaker added) from that file; a base image's layer is fetched from
// the registry, into dir, only when BuildKit first asks for it. BuildKit
// asks for a layer only when it holds neither the blob nor a snapshot of
// it, so a build on bases it has seen fetches none of them. dir is the
// build's own and removed with it: nothing outlives the validation.
type validationStore struct {
	// Store is the local store in dir: the layers fetched so far.
	content.Store
	// ctx bounds the fetches, which outlive the request that started them
	// (others may wait on them).
	ctx   context.Context
	dir   string
	blobs map[digest.Digest]storeBlob
	// files are where the bytes of each layer served so far are.
	mu      sync.Mutex
	files   map[digest.Digest]string
	fetches singleflight.Group
	// fetched counts the bytes of layers copied into dir.
	fetched atomic.Int64
	// read are the blobs BuildKit read, in the order it first did.
	read []digest.Digest
}

// storeBlob is one blob BuildKit may ask for: data (a manifest or a
// config) or layer.
type storeBlob struct {
	size  int64
	data  []byte
	layer v1.Layer
}

func newValidationStore(ctx context.Context, dir string) (*validationStore, error) {
	st, err := local.NewStore(dir)
	if err != nil {
		return nil, err
	}
	return &validationStore{Store: st, ctx: ctx, dir: dir, blobs: map[digest.Digest]storeBlob{}, files: map[digest.Digest]string{}}, nil
}

// add makes img's manifest, config and layers available by digest. It
// reads nothing but the manifest and the config.
func (s *validationStore) add(img v1.Image) error {
	raw, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("reading the manifest: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("reading the manifest's digest: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("reading the manifest: %w", err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("reading the config: %w", err)
	}
	s.blobs[digest.Digest(d.String())] = storeBlob{size: int64(len(raw)), data: raw}
	s.blobs[digest.Digest(m.Config.Digest.String())] = storeBlob{size: int64(len(cfg)), data: cfg}
	for _, l := range m.Layers {
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return fmt.Errorf("finding the layer %s: %w", l.Digest, err)
		}
		s.blobs[digest.Digest(l.Digest.String())] = storeBlob{size: l.Size, layer: layer}
	}
	return nil
}

// Info is what the store knows of a blob, without reading it.
func (s *validationStore) Info(_ context.Context, dgst digest.Digest) (content.Info, error) {
	b, ok := s.blobs[dgst]
	if !ok {
		return content.Info{}, fmt.Errorf("blob %s: %w", dgst, cerrdefs.ErrNotFound)
	}
	return content.Info{Digest: dgst, Size: b.size}, nil
}

// ReaderAt serves a blob, fetching a layer the first time it is asked
// for.
func (s *validationStore) ReaderAt(_ context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	b, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, cerrdefs.ErrNotFound)
	}
	s.mu.Lock()
	if !slices.Contains(s.read, desc.Digest) {
		s.read = append(s.read, desc.Digest)
	}
	s.mu.Unlock()
	if b.layer == nil {
		return bytesReaderAt{bytes.NewReader(b.data)}, nil
	}
	p, err := s.layerFile(desc.Digest, b)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return fileReaderAt{File: f, size: b.size}, nil
}

// layerFile is the file holding the layer dgst: the layer's own when it
// is a file on this machine, else a copy fetched into the store once.
func (s *validationStore) layerFile(dgst digest.Digest, b storeBlob) (string, error) {
	s.mu.Lock()
	p, ok := s.files[dgst]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	v, err, _ := s.fetches.Do(dgst.String(), func() (any, error) {
		s.mu.Lock()
		p, ok := s.files[dgst]
		s.mu.Unlock()
		if ok {
			return p, nil
		}
		rc, err := b.layer.Compressed()
		if err != nil {
			return "", fmt.Errorf("fetching the layer %s: %w", dgst, err)
		}
		defer rc.Close()
		if f, ok := rc.(*os.File); ok && sameSize(f, b.size) {
			p = f.Name()
		} else {
			desc := ocispecs.Descriptor{Digest: dgst, Size: b.size}
			cr := &countingReader{r: rc, n: &s.fetched}
			if err := content.WriteBlob(s.ctx, s.Store, "validate-"+dgst.String(), cr, desc); err != nil && !cerrdefs.IsAlreadyExists(err) {
				return "", fmt.Errorf("fetching the layer %s: %w", dgst, err)
			}
			p = s.blobPath(dgst)
		}
		s.mu.Lock()
		s.files[dgst] = p
		s.mu.Unlock()
		return p, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// sameSize says whether f holds size bytes: a file a layer's Compressed
// opened is served as it is, if it is the blob.
func sameSize(f *os.File, size int64) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// blobPath is where the local store keeps dgst (an OCI layout's path).
func (s *validationStore) blobPath(dgst digest.Digest) string {
	return filepath.Join(s.dir, "blobs", dgst.Algorithm().String(), dgst.Encoded())
}

// layersRead are the layers BuildKit read.
func (s *validationStore) layersRead() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.read {
		if s.blobs[d].layer != nil {
			out = append(out, d.String())
		}
	}
	return out
}

type bytesReaderAt struct{ *bytes.Reader }

func (bytesReaderAt) Close() error { return nil }

type fileReaderAt struct {
	*os.File
	size int64
}

func (f fileReaderAt) Size() int64 { return f.size }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
