package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/sailmaker/sailmaker/api"
)

// signatureRE is the form of SignatureHeader's value.
var signatureRE = regexp.MustCompile(`^sha256=[0-9a-fA-F]{64}$`)

// Webhook headers.
const (
	GitHubEventHeader       = "X-GitHub-Event"
	GitHubDeliveryHeader    = "X-GitHub-Delivery"
	SailmakerDeliveryHeader = "X-Sailmaker-Delivery"
)

// recipeTimeout bounds deriving a recipe from an upstream tag (a shallow
// fetch of the tag).
const recipeTimeout = 5 * time.Minute

// TagEvent is the minimal webhook body: {"repo": "<git URL>", "tag": "1.25.0"}.
type TagEvent struct {
	Repo string `json:"repo"`
	Tag  string `json:"tag"`
}

// githubEvent holds the fields sailmaker reads from GitHub's create and push
// events.
type githubEvent struct {
	Ref        string `json:"ref"`
	RefType    string `json:"ref_type"`
	Deleted    bool   `json:"deleted"`
	Repository struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
		GitURL   string `json:"git_url"`
		SSHURL   string `json:"ssh_url"`
	} `json:"repository"`
}

// WebhookResponse is what the webhook answers.
type WebhookResponse struct {
	// Status is queued (a new build), joined (the same build was already
	// queued or running), ignored, duplicate (the delivery was handled
	// before) or pong.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	Recipe string `json:"recipe,omitempty"`
	Build  *Build `json:"build,omitempty"`
}

func (s *Service) webhookHandler(w http.ResponseWriter, r *http.Request, _ *principal) {
	wh := s.srv.Webhook
	// What can be checked before the body is read is checked first, so
	// that a caller without a well-formed signature, or with a body too
	// large, is answered without waiting for the body.
	if wh.Secret == "" {
		s.metrics.webhook("unauthorized")
		writeError(w, http.StatusUnauthorized, "unauthorized", "the webhook has no secret configured (server.webhook.secret or SAILMAKER_WEBHOOK_SECRET), so no signature is valid")
		return
	}
	if !signatureRE.MatchString(strings.TrimSpace(r.Header.Get(SignatureHeader))) {
		s.metrics.webhook("unauthorized")
		s.log.WithField("delivery", clip(deliveryID(r), 64)).Warn("webhook delivery without a well-formed signature: ignored")
		writeError(w, http.StatusUnauthorized, "unauthorized", "missing or bad signature: "+SignatureHeader+" must be sha256=<hex HMAC-SHA256 of the body>")
		return
	}
	if r.ContentLength > s.srv.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes (server.maxBodyBytes)", s.srv.MaxBodyBytes))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.srv.MaxBodyBytes)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes (server.maxBodyBytes)", mbe.Limit))
		case isTimeout(err):
			writeError(w, http.StatusRequestTimeout, "timeout", fmt.Sprintf("the body did not arrive within %s of the headers", s.bodyTimeout))
		default:
			writeError(w, http.StatusBadRequest, "bad_request", "reading the body: "+err.Error())
		}
		return
	}
	if !validSignature(wh.Secret, r.Header.Get(SignatureHeader), body) {
		s.metrics.webhook("unauthorized")
		s.log.WithField("delivery", clip(deliveryID(r), 64)).Warn("webhook delivery with a bad signature: ignored")
		writeError(w, http.StatusUnauthorized, "unauthorized", "missing or bad signature: "+SignatureHeader+" must be sha256=<hex HMAC-SHA256 of the body>")
		return
	}
	event := r.Header.Get(GitHubEventHeader)
	var repos []string
	var tag string
	switch event {
	case "":
		var ev TagEvent
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", `the body must be {"repo": "<git URL>", "tag": "<tag>"} (or a GitHub create/push event with `+GitHubEventHeader+`): `+err.Error())
			return
		}
		if ev.Repo == "" || ev.Tag == "" {
			writeError(w, http.StatusBadRequest, "bad_request", `"repo" and "tag" are both required`)
			return
		}
		event, repos, tag = "tag", []string{ev.Repo}, ev.Tag
	case "ping":
		writeJSON(w, http.StatusOK, WebhookResponse{Status: "pong"})
		return
	case "create", "push":
		var ev githubEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "malformed GitHub "+event+" event: "+err.Error())
			return
		}
		rp := ev.Repository
		for _, u := range []string{rp.CloneURL, rp.HTMLURL, rp.GitURL, rp.SSHURL} {
			if u != "" {
				repos = append(repos, u)
			}
		}
		switch {
		case event == "create" && ev.RefType == "tag":
			tag = ev.Ref
		case event == "push" && strings.HasPrefix(ev.Ref, "refs/tags/") && !ev.Deleted:
			tag = strings.TrimPrefix(ev.Ref, "refs/tags/")
		default:
			s.metrics.webhook("ignored")
			writeJSON(w, http.StatusOK, WebhookResponse{Status: "ignored", Reason: "not the creation of a tag"})
			return
		}
		if len(repos) == 0 || tag == "" {
			writeError(w, http.StatusBadRequest, "bad_request", "the "+event+" event names no repository or no tag")
			return
		}
	default:
		s.metrics.webhook("ignored")
		writeJSON(w, http.StatusOK, WebhookResponse{Status: "ignored", Reason: fmt.Sprintf("event %q is not a tag event (create, push)", event)})
		return
	}
	id := deliveryID(r)
	if id == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "a delivery id is required ("+GitHubDeliveryHeader+" or "+SailmakerDeliveryHeader+")")
		return
	}
	if len(id) > 200 {
		writeError(w, http.StatusBadRequest, "bad_request", "the delivery id is longer than 200 characters")
		return
	}
	log := s.log.WithFields(logrus.Fields{"delivery": id, "event": event, "tag": tag})
	fresh, prev, err := s.db.beginDelivery(r.Context(), id, event, time.Now())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !fresh {
		s.metrics.webhook("duplicate")
		log.Info("webhook delivery seen before: ignored")
		resp := WebhookResponse{Status: "duplicate", Reason: fmt.Sprintf("delivery %s was handled before (%s)", id, prev.Outcome)}
		if prev.BuildID != "" {
			if b, err := s.db.get(r.Context(), prev.BuildID); err == nil {
				resp.Build = b
			}
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	// The rest goes on even if the caller hangs up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), recipeTimeout)
	defer cancel()
	dl := delivery{ID: id, Tag: tag}
	code, resp := s.handleTag(ctx, log, &dl, repos, tag)
	if err := s.db.endDelivery(context.WithoutCancel(ctx), dl); err != nil {
		log.WithError(err).Error("recording a webhook delivery")
	}
	s.metrics.webhook(dl.Outcome)
	if code >= 400 {
		writeError(w, code, "upstream_error", resp.Reason)
		return
	}
	writeJSON(w, code, resp)
}

func deliveryID(r *http.Request) string {
	if v := r.Header.Get(GitHubDeliveryHeader); v != "" {
		return v
	}
	return r.Header.Get(SailmakerDeliveryHeader)
}

// handleTag decides what a signed tag event does, and records it in dl.
func (s *Service) handleTag(ctx context.Context, log logrus.FieldLogger, dl *delivery, repos []string, tag string) (int, WebhookResponse) {
	wh := s.srv.Webhook
	repo := matchRepo(wh.Repos, repos)
	if repo == "" {
		dl.Outcome, dl.Repo = deliveryIgnored, repos[0]
		dl.Detail = "repository not configured"
		log.WithField("repo", repos[0]).Warn("webhook for a repository that is not in server.webhook.repos: ignored")
		return http.StatusOK, WebhookResponse{Status: "ignored", Reason: fmt.Sprintf("repository %s is not configured (server.webhook.repos)", repos[0])}
	}
	dl.Repo = repo
	pattern, err := regexp.Compile(wh.TagPattern)
	if err != nil {
		dl.Outcome, dl.Detail = deliveryError, err.Error()
		return http.StatusInternalServerError, WebhookResponse{Reason: "server.webhook.tagPattern: " + err.Error()}
	}
	if !pattern.MatchString(tag) {
		dl.Outcome, dl.Detail = deliveryIgnored, "tag does not match the pattern"
		log.Info("webhook tag does not match server.webhook.tagPattern: ignored")
		return http.StatusOK, WebhookResponse{Status: "ignored", Reason: fmt.Sprintf("tag %s does not match %s", tag, wh.TagPattern)}
	}
	log.WithField("repo", repo).Info("upstream tag: deriving its recipe")
	rec, doc, err := s.recipeFromTag(ctx, repo, tag)
	if err != nil {
		dl.Outcome, dl.Detail = deliveryError, err.Error()
		log.WithError(err).Error("deriving the recipe of an upstream tag")
		return http.StatusBadGateway, WebhookResponse{Reason: fmt.Sprintf("deriving the recipe of %s at %s: %v (the delivery may be sent again)", repo, tag, err)}
	}
	b, created, err := s.Submit(ctx, rec, SourceWebhook, doc, SubmitOptions{Trigger: api.Trigger{Actor: "webhook", Kind: api.TriggerWebhook, DeliveryID: dl.ID}})
	if err != nil {
		dl.Outcome, dl.Detail = deliveryError, err.Error()
		var refused *RequestError
		if errors.As(err, &refused) {
			return refused.Status, WebhookResponse{Reason: err.Error()}
		}
		return http.StatusInternalServerError, WebhookResponse{Reason: err.Error()}
	}
	dl.Outcome, dl.BuildID = deliveryQueued, b.ID
	status := "queued"
	if !created {
		status = "joined"
	}
	return http.StatusAccepted, WebhookResponse{Status: status, Recipe: rec.ID(), Build: b}
}

// matchRepo returns the configured repository one of the event's URLs
// names, compared without scheme differences that do not matter (a trailing
// slash or .git, case).
func matchRepo(configured, urls []string) string {
	for _, c := range configured {
		for _, u := range urls {
			if normalizeRepo(c) == normalizeRepo(u) {
				return c
			}
		}
	}
	return ""
}

func normalizeRepo(u string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	u = strings.TrimSuffix(u, "/")
	return strings.TrimSuffix(u, ".git")
}
