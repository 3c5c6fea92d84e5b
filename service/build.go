package service

import (
	"time"

	"github.com/sailmaker/sailmaker/api"
)

// State is where a build is.
type State string

// The states of a build. queued, fetching, building and pushing are active;
// succeeded, failed and cancelled are final.
const (
	StateQueued    State = "queued"
	StateFetching  State = "fetching"
	StateBuilding  State = "building"
	StatePushing   State = "pushing"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// States lists every state, in order.
var States = []State{StateQueued, StateFetching, StateBuilding, StatePushing, StateSucceeded, StateFailed, StateCancelled}

// Active is true for a build that is queued or running.
func (s State) Active() bool {
	return s == StateQueued || s.Running()
}

// Running is true while an attempt of the build runs.
func (s State) Running() bool {
	return s == StateFetching || s == StateBuilding || s == StatePushing
}

// Final is true once nothing more will happen to the build.
func (s State) Final() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

func validState(s string) bool {
	for _, st := range States {
		if string(st) == s {
			return true
		}
	}
	return false
}

// Where a build's recipe came from.
const (
	SourceEmbedded = "embedded" // a recipe shipped with sailmaker, by id
	SourceStored   = "stored"   // a recipe file in <state>/recipes, by id
	SourceInline   = "inline"   // a recipe document in the request
	SourceWebhook  = "webhook"  // derived from an upstream tag by the webhook
)

// Build is one build request and what became of it.
type Build struct {
	ID string `json:"id"`
	// Recipe is the recipe's id (name@version).
	Recipe       string `json:"recipe"`
	RecipeDigest string `json:"recipeDigest"`
	// Source says where the recipe came from: embedded, stored, inline or
	// webhook.
	Source      string `json:"source"`
	State       State  `json:"state"`
	Force       bool   `json:"force,omitempty"`
	EnvoySHA256 string `json:"envoySHA256,omitempty"`
	// EnvoySHA256ByArch are other architectures' Envoy sha256 overrides;
	// Platforms, if set, the recipe's platforms this build makes.
	EnvoySHA256ByArch map[string]string `json:"envoySHA256ByArch,omitempty"`
	Platforms         []string          `json:"platforms,omitempty"`
	Trigger           api.Trigger       `json:"trigger"`
	// Created is when the build was asked for; Started when its first
	// attempt started; Finished when it reached a final state.
	Created  time.Time  `json:"created"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// Phases are when the current (or last) attempt entered each phase.
	Phases  map[State]time.Time `json:"phases,omitempty"`
	Timings *api.Timings        `json:"timings,omitempty"`
	// UpToDate: the registry already had the images from the same inputs;
	// nothing was built or pushed.
	UpToDate bool `json:"upToDate,omitempty"`
	// Images are the images the build published; a failed build lists
	// those it tagged before it failed.
	Images []api.Image `json:"images,omitempty"`
	Error  string      `json:"error,omitempty"`
	// Attempts counts the starts of the build.
	Attempts int `json:"attempts"`
	// Interruptions are the attempts the service did not see to the end.
	Interruptions []Interruption `json:"interruptions,omitempty"`
	CancelledBy   string         `json:"cancelledBy,omitempty"`
	Warnings      []string       `json:"warnings,omitempty"`
	// Worker is the BuildKit worker of the pool the current (or last)
	// attempt ran on.
	Worker string `json:"worker,omitempty"`
}

// Interruption is an attempt that ended because the service stopped, or
// because its worker went away.
type Interruption struct {
	Time   time.Time `json:"time"`
	Phase  State     `json:"phase"`
	Reason string    `json:"reason"`
	// Graceful: the service was stopped (SIGTERM) and queued the build
	// again itself; such interruptions do not use up retries.
	Graceful bool `json:"graceful,omitempty"`
	// Worker is the pool worker that was lost, when that was the cause.
	Worker string `json:"worker,omitempty"`
}

// Result is the build's result as the CLI prints a local build's.
func (b *Build) Result() api.Result {
	return api.Result{Recipe: b.Recipe, RecipeDigest: b.RecipeDigest, Trigger: b.Trigger,
		UpToDate: b.UpToDate, Images: b.Images, Timings: b.Timings}
}
