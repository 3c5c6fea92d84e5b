package publish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/aptrepo"
	"github.com/sailmaker/sailmaker/builder"
)

// OutputApt names an apt repository output: apt=DIR.
const OutputApt = "apt"

// Apt adds the Debian packages of a build to the signed apt repository in
// dir (made if missing; see package aptrepo): their .debs go into the
// pool, the indices and the Release files are written again and signed
// with opts.Signer. Images and binaries are not packages and are left out.
// A package version already in the repository must have the same bytes
// (aptrepo refuses to change a published version). Publishes into one
// directory take turns (a lock file in it), so concurrent builds cannot
// interleave their index writes.
func Apt(dir string, opts aptrepo.Options, log logrus.FieldLogger) Publisher {
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &aptPublisher{dir: dir, opts: opts, log: log}
}

type aptPublisher struct {
	dir  string
	opts aptrepo.Options
	log  logrus.FieldLogger
}

func (a *aptPublisher) Publish(ctx context.Context, res *builder.Result) ([]api.Image, error) {
	var pkgs []builder.Image
	for _, im := range res.Images {
		if im.Kind == builder.KindPackage {
			pkgs = append(pkgs, im)
		}
	}
	if len(pkgs) == 0 {
		return nil, nil
	}
	if a.opts.Signer == nil {
		return nil, errors.New("the apt repository output needs an OpenPGP key: signing.aptKey ($SAILMAKER_APT_KEY); `sailmaker signing keygen --openpgp` makes one")
	}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return nil, fmt.Errorf("making the apt repository %s: %w", a.dir, err)
	}
	unlock, err := lockDir(ctx, a.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	tmp, err := os.MkdirTemp(a.dir, ".incoming-")
	if err != nil {
		return nil, fmt.Errorf("writing into the apt repository %s: %w", a.dir, err)
	}
	defer os.RemoveAll(tmp)
	files := make([]string, len(pkgs))
	for i, im := range pkgs {
		data, err := builder.ArtifactContent(im.Image, builder.ArtifactTypeDeb)
		if err != nil {
			return nil, fmt.Errorf("reading the .deb of %s: %w", im.Tag, err)
		}
		files[i] = filepath.Join(tmp, fmt.Sprintf("%d.deb", i))
		if err := os.WriteFile(files[i], data, 0o644); err != nil {
			return nil, err
		}
	}
	repo, err := aptrepo.Build(ctx, a.dir, files, a.opts)
	if err != nil {
		return nil, fmt.Errorf("updating the apt repository %s: %w", a.dir, err)
	}
	byKey := map[string]aptrepo.Package{}
	for _, p := range repo.Packages {
		byKey[p.Name+"_"+p.Version+"_"+p.Architecture] = p
	}
	out := Output{Kind: OutputApt, Path: a.dir}
	var done []api.Image
	for _, im := range pkgs {
		r, err := written(out, im)
		if err != nil {
			return done, err
		}
		if r.Package != nil {
			p := byKey[r.Package.Name+"_"+r.Package.Version+"_"+r.Package.Architecture]
			if p.Filename != "" {
				r.Reference = p.Filename
				r.Package.File = p.Filename
			}
			if p.Status != "added" {
				r.Status = api.StatusUnchanged
			}
		}
		done = append(done, r)
	}
	a.log.WithFields(logrus.Fields{"dir": a.dir, "suite": repo.Suite, "packages": len(repo.Packages), "key": repo.Fingerprint}).Info("apt repository updated")
	return done, nil
}

// lockDir holds dir/.lock (a hidden name: aptrepo.Handler never serves it)
// until the returned function is called, waiting for another holder.
func lockDir(ctx context.Context, dir string) (func(), error) {
	p := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking the apt repository %s: %w", dir, err)
	}
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking the apt repository %s: %w", dir, err)
		}
	case <-ctx.Done():
		// The goroutine takes the lock eventually; closing the file drops it.
		go func() { <-done; f.Close() }()
		return nil, ctx.Err()
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
