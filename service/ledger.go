package service

import (
	"context"
	"path"
	"sort"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/publish"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

// The service's side of the push ledger: when it starts, it settles the
// tag writes a previous run left unconfirmed (it was killed between asking
// the registry and recording the answer), and makes each build's record
// list the images the ledger says it tagged, so that a build that failed
// or was interrupted after tagging still names them.

// reconcileLedger settles pending intents against the registry and returns
// the builds whose tags it confirmed. With no pending intents it does not
// contact the registry.
func (s *Service) reconcileLedger(ctx context.Context) []string {
	pending, err := s.st.PendingIntents(ctx)
	if err != nil {
		s.log.WithError(err).Error("reading the ledger's pending tag writes")
		return nil
	}
	if len(pending) == 0 {
		return nil
	}
	rc, err := registry.NewClient(s.cfg)
	if err != nil {
		s.log.WithError(err).Error("settling the ledger's pending tag writes")
		return nil
	}
	reg, err := publish.NewRegistry(rc, publish.WithLedger(s.st), publish.WithLog(s.log))
	if err != nil {
		s.log.WithError(err).Error("settling the ledger's pending tag writes")
		return nil
	}
	confirmed, err := reg.Reconcile(ctx)
	if err != nil {
		s.log.WithError(err).WithField("pending", len(pending)).Warn("could not settle the ledger's pending tag writes now (the registry does not answer?); the next build settles them")
	}
	left, _ := s.st.PendingIntents(ctx)
	s.log.WithFields(logrus.Fields{"pending": len(pending), "confirmed": len(confirmed), "stillPending": len(left)}).
		Info("settled tag writes a previous run left unconfirmed in the ledger")
	var builds []string
	seen := map[string]bool{}
	for _, e := range confirmed {
		if e.BuildID != "" && !seen[e.BuildID] {
			seen[e.BuildID] = true
			builds = append(builds, e.BuildID)
		}
	}
	return builds
}

// onConfirmed lists on their builds' records the tag writes a publish
// found done for earlier builds (their answer was lost, or their process
// ended before it came).
func (s *Service) onConfirmed(ctx context.Context, confirmed []store.Entry) {
	seen := map[string]bool{}
	for _, e := range confirmed {
		if e.BuildID != "" && !seen[e.BuildID] {
			seen[e.BuildID] = true
			s.recordLedgerImages(ctx, e.BuildID)
		}
	}
}

// recordLedgerImages adds to the build's record every tag the ledger says
// the build wrote (pushed or moved) that the record does not list.
func (s *Service) recordLedgerImages(ctx context.Context, id string) {
	entries, err := s.st.Entries(ctx, store.LedgerFilter{BuildID: id})
	if err != nil {
		s.log.WithError(err).WithField("build", id).Error("reading the ledger")
		return
	}
	last := map[string]store.Entry{}
	for _, e := range entries {
		if e.Action == store.ActionPush || e.Action == store.ActionForce {
			last[e.Repository+":"+e.Tag] = e
		}
	}
	if len(last) == 0 {
		return
	}
	b, err := s.db.get(ctx, id)
	if err != nil {
		return
	}
	names := map[string]string{}
	if r, err := s.loadBuildRecipe(ctx, b); err == nil {
		for _, im := range r.Spec.Images {
			names[im.Repository] = im.Name
		}
	}
	var add []api.Image
	for _, e := range last {
		repo := s.cfg.Registry.Address + "/" + e.Repository
		if hasImage(b.Images, repo, e.Tag, e.NewDigest) {
			continue
		}
		name := names[e.Repository]
		if name == "" {
			name = path.Base(e.Repository)
		}
		im := api.Image{Name: name, Output: publish.OutputRegistry, Repository: repo, Tag: e.Tag,
			Reference: repo + "@" + e.NewDigest, Digest: e.NewDigest, Status: api.StatusPushed}
		if e.Action == store.ActionForce {
			im.Status, im.PreviousDigest = api.StatusMoved, e.OldDigest
		}
		add = append(add, im)
	}
	if len(add) == 0 {
		return
	}
	sort.Slice(add, func(i, j int) bool { return add[i].Repository+":"+add[i].Tag < add[j].Repository+":"+add[j].Tag })
	if _, err := s.db.update(ctx, id, func(b *Build) error {
		b.Images = mergeImages(b.Images, add)
		return nil
	}); err != nil {
		s.log.WithError(err).WithField("build", id).Error("recording the images the ledger says a build tagged")
		return
	}
	s.log.WithFields(logrus.Fields{"build": id, "images": len(add)}).Info("the build's record now lists the images the ledger says it tagged")
}

func hasImage(imgs []api.Image, repo, tag, digest string) bool {
	for _, im := range imgs {
		if im.Repository == repo && im.Tag == tag && im.Digest == digest {
			return true
		}
	}
	return false
}

// mergeImages is old with each image of add replacing the one of the same
// output, repository and tag, and the others appended: an attempt's result
// does not drop the images an earlier attempt tagged.
func mergeImages(old, add []api.Image) []api.Image {
	key := func(im api.Image) string { return im.Output + " " + im.Repository + ":" + im.Tag }
	out := append([]api.Image(nil), old...)
	at := map[string]int{}
	for i, im := range out {
		at[key(im)] = i
	}
	for _, im := range add {
		if i, ok := at[key(im)]; ok {
			out[i] = im
			continue
		}
		at[key(im)] = len(out)
		out = append(out, im)
	}
	return out
}
