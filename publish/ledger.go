package publish

import (
	"context"
	"errors"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/registry"
	"github.com/sailmaker/sailmaker/store"
)

// RecordPushed records in l a push made outside a Registry publisher (the
// base images' registry.PushAll): a new or moved tag, or the refusal in
// pushErr. An unchanged tag is not recorded.
func RecordPushed(ctx context.Context, l Ledger, tr api.Trigger, p *registry.Pushed, pushErr error) error {
	var moved *registry.TagMovedError
	switch {
	case errors.As(pushErr, &moved):
		// A refusal is recorded even though the push failed.
		return l.Append(context.WithoutCancel(ctx), entry(tr, store.ActionRefused, moved.Tag, moved.Current.String(), moved.New.String()))
	case pushErr != nil || p == nil || p.Unchanged:
		return nil
	}
	action, old := store.ActionPush, ""
	if p.Previous != nil {
		old = p.Previous.String()
	}
	if p.Forced {
		action = store.ActionForce
	}
	return l.Append(context.WithoutCancel(ctx), entry(tr, action, p.Tag, old, p.Digest.String()))
}
