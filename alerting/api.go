package alerting

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// AlertStatus is an alert as the API and the dashboard show it.
type AlertStatus struct {
	jobcast.AlertInstance
	Severity string `json:"severity"`
	Summary  string `json:"summary,omitempty"`
	// SilencedBy lists the silences muting the alert now.
	SilencedBy []string `json:"silencedBy,omitempty"`
}

// Snapshot is what the dashboard's alerts panel shows: firing, pending and
// silenced alerts, and the recent notification history. It is a copy.
type Snapshot struct {
	EvaluatedAt time.Time                    `json:"evaluatedAt,omitzero"`
	Firing      []AlertStatus                `json:"firing"`
	Pending     []AlertStatus                `json:"pending"`
	Silenced    []AlertStatus                `json:"silenced"`
	Resolved    []AlertStatus                `json:"resolved"`
	History     []jobcast.NotificationRecord `json:"history"`
	Rules       int                          `json:"rules"`
}

// Snapshot returns the alerts now and the last historyLimit notifications.
func (s *Service) Snapshot(ctx context.Context, historyLimit int) (Snapshot, error) {
	all := s.alertList(true)
	snap := Snapshot{Firing: []AlertStatus{}, Pending: []AlertStatus{}, Silenced: []AlertStatus{}, Resolved: []AlertStatus{}}
	for _, a := range all {
		switch {
		case a.State == jobcast.AlertResolved:
			snap.Resolved = append(snap.Resolved, a)
		case len(a.SilencedBy) > 0:
			snap.Silenced = append(snap.Silenced, a)
		case a.State == jobcast.AlertFiring:
			snap.Firing = append(snap.Firing, a)
		default:
			snap.Pending = append(snap.Pending, a)
		}
	}
	s.mu.Lock()
	snap.EvaluatedAt, snap.Rules = s.lastEval, len(s.cc.rules)
	s.mu.Unlock()
	if historyLimit > 0 {
		h, err := s.store.ListNotifications(ctx, historyLimit)
		if err != nil {
			return snap, err
		}
		snap.History = h
	}
	return snap, nil
}

// Alerts lists the pending and firing alerts (GET /v1/alerts), firing
// first, critical before warning.
func (s *Service) Alerts() []AlertStatus { return s.alertList(false) }

func (s *Service) alertList(withResolved bool) []AlertStatus {
	s.mu.Lock()
	now := s.clock.Now()
	out := []AlertStatus{}
	for _, a := range s.alerts {
		if a.State == jobcast.AlertResolved && !withResolved {
			continue
		}
		st := AlertStatus{AlertInstance: cloneAlert(a), Severity: a.Labels["severity"], Summary: a.Annotations["summary"]}
		if a.State != jobcast.AlertResolved {
			st.SilencedBy = s.silencedBy(a.Labels, now)
		}
		out = append(out, st)
	}
	s.mu.Unlock()
	rank := map[string]int{jobcast.AlertFiring: 0, jobcast.AlertPending: 1, jobcast.AlertResolved: 2}
	sev := map[string]int{"critical": 0, "warning": 1, "info": 2}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if rank[a.State] != rank[b.State] {
			return rank[a.State] < rank[b.State]
		}
		if sev[a.Severity] != sev[b.Severity] {
			return sev[a.Severity] < sev[b.Severity]
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Fingerprint < b.Fingerprint
	})
	return out
}

// RuleStatus is a rule as GET /v1/alerts/rules lists it.
type RuleStatus struct {
	Rule
	// Source is default, file or api: where the rule in force comes from.
	Source string     `json:"source"`
	Health RuleHealth `json:"health"`
}

// RulesView is the answer of GET /v1/alerts/rules.
type RulesView struct {
	EvalInterval Duration       `json:"evalInterval"`
	File         string         `json:"file,omitempty"`
	ReloadError  string         `json:"reloadError,omitempty"`
	Rules        []RuleStatus   `json:"rules"`
	Receivers    []receiverInfo `json:"receivers"`
}

// Rules lists every rule in force (and the disabled ones), with health.
func (s *Service) Rules() RulesView {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := RulesView{EvalInterval: Duration(s.interval), File: s.opt.File, ReloadError: s.reloadErr, Rules: []RuleStatus{}, Receivers: receiverInfos(s.cc)}
	for _, r := range s.cc.all {
		v.Rules = append(v.Rules, RuleStatus{Rule: r.Rule, Source: r.source, Health: s.health[r.Name]})
	}
	return v
}

// SetRules replaces the rules set through the API with the rules of doc
// (YAML or JSON {"rules": [...]}); they lie on top of the defaults and the
// file, by name. The new rules are validated and each is run once, so a
// query the sandbox refuses is an error now and not a silent failure
// later. Refusals are *jobcast.Error with E_BAD_REQUEST.
func (s *Service) SetRules(ctx context.Context, doc []byte) (int, error) {
	rules, err := parseRulesDoc(doc)
	if err != nil {
		return 0, jobcast.Errorf(protocol.ErrBadRequest, "rules: %s", err)
	}
	s.evalMu.Lock()
	defer s.evalMu.Unlock()
	s.mu.Lock()
	base := s.fileCfg.Merge(s.opt.Config)
	s.mu.Unlock()
	cc, err := compile(base, rules)
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return 0, jobcast.Errorf(protocol.ErrBadRequest, "%s", err)
		}
		return 0, err
	}
	now := s.clock.Now()
	for _, r := range cc.rules {
		if r.source != "api" {
			continue
		}
		if _, err := s.query(ctx, r, now); err != nil {
			if jobcast.ErrorCode(err) == protocol.ErrInternal {
				return 0, fmt.Errorf("rule %s: %w", r.Name, err)
			}
			return 0, jobcast.Errorf(protocol.ErrBadRequest, "rule %q: %s", r.Name, jobcast.ErrorMessage(err))
		}
	}
	out, err := yaml.Marshal(map[string]any{"rules": rules})
	if err != nil {
		return 0, err
	}
	if err := s.store.SetAPIRules(ctx, string(out)); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.apiRules, s.cc = rules, cc
	s.syncWorkersLocked()
	s.mu.Unlock()
	return len(cc.rules), nil
}

// History returns up to limit notifications, newest first.
func (s *Service) History(ctx context.Context, limit int) ([]jobcast.NotificationRecord, error) {
	return s.store.ListNotifications(ctx, limit)
}

// Silences lists the silences, active and expired (kept 5 days).
func (s *Service) Silences() []jobcast.Silence {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]jobcast.Silence, 0, len(s.silences))
	for _, sil := range s.silences {
		out = append(out, sil.Silence)
	}
	return out
}

// AddSilence validates and stores a new silence (a new ID is assigned;
// StartsAt defaults to now).
func (s *Service) AddSilence(ctx context.Context, sil jobcast.Silence) (jobcast.Silence, error) {
	now := s.clock.Now()
	if sil.StartsAt.IsZero() {
		sil.StartsAt = now
	}
	if err := validateSilence(&sil, now); err != nil {
		return sil, jobcast.Errorf(protocol.ErrBadRequest, "silence: %s", err)
	}
	sil.ID, sil.CreatedAt = newID(), now
	as, err := compileSilence(sil)
	if err != nil {
		return sil, jobcast.Errorf(protocol.ErrBadRequest, "silence: %s", err)
	}
	if err := s.store.PutSilence(ctx, sil); err != nil {
		return sil, err
	}
	s.mu.Lock()
	s.silences = append(s.silences, as)
	s.mu.Unlock()
	return sil, nil
}

// ErrSilenceNotFound answers an unknown silence ID.
var ErrSilenceNotFound = &jobcast.Error{Code: "E_NOT_FOUND", Message: "no silence with this id"}

// ExpireSilence ends the silence id now. Alerts it muted notify at the
// next evaluation if they still fire.
func (s *Service) ExpireSilence(ctx context.Context, id string) (jobcast.Silence, error) {
	now := s.clock.Now()
	s.mu.Lock()
	var found *activeSilence
	for _, sil := range s.silences {
		if sil.ID == id {
			found = sil
		}
	}
	if found == nil {
		s.mu.Unlock()
		return jobcast.Silence{}, ErrSilenceNotFound
	}
	updated := found.Silence
	if updated.EndsAt.After(now) {
		updated.EndsAt = now
		if updated.StartsAt.After(now) {
			updated.StartsAt = now
		}
	}
	s.mu.Unlock()
	if err := s.store.PutSilence(ctx, updated); err != nil {
		return updated, err
	}
	s.mu.Lock()
	found.Silence = updated
	s.mu.Unlock()
	return updated, nil
}
