package alerting

import (
	"context"
	"fmt"

	"github.com/jobcast/jobcast"
)

// Cluster mode: every node runs a Service on the shared alert store and
// telemetry, and only the node that Options.Leader names evaluates, saves
// alert state and notifies. The others follow: at each of their intervals
// they read the state the leader saved, so their API and dashboard show the
// cluster's alerts. Silences and API rules may be set through any node;
// the leader reads them at each evaluation. A node that becomes leader
// first loads the alerts the previous leader saved, with the receivers each
// was sent to, so that it does not notify them again.

// lead reports whether this evaluation may run, reading what other nodes
// wrote to the store first. evalMu is held.
func (s *Service) lead(ctx context.Context) bool {
	if s.opt.Leader == nil {
		return true
	}
	if !s.opt.Leader.IsLeader() {
		s.leading = false
		if err := s.refresh(ctx, true); err != nil {
			s.log.Warn("alerting: reading the leader's alert state failed", "err", err)
		}
		return false
	}
	if err := s.refresh(ctx, !s.leading); err != nil {
		// Without the previous leader's state it would notify again.
		s.log.Error("alerting: not evaluating: reading the shared alert state failed", "err", err)
		s.leading = false
		return false
	}
	if !s.leading {
		s.log.Info("alerting: this node now evaluates the alert rules (alert leader)")
	}
	s.leading = true
	return true
}

// stillLeading is checked after the queries, before anything is saved or
// sent: a node that lost the lease during a long evaluation drops it.
// evalMu is held.
func (s *Service) stillLeading() bool {
	if s.opt.Leader == nil || s.opt.Leader.IsLeader() {
		return true
	}
	s.log.Warn("alerting: lost the alert lease during an evaluation; its results are dropped")
	s.leading = false
	return false
}

// refresh reads the silences and the API rules, and the alert instances
// when alerts is set, from the store. evalMu is held.
func (s *Service) refresh(ctx context.Context, alerts bool) error {
	if err := s.loadSilences(ctx); err != nil {
		return err
	}
	doc, err := s.store.APIRules(ctx)
	if err != nil {
		return err
	}
	if doc != s.apiDoc {
		s.applyAPIRules(doc)
	}
	if !alerts {
		return nil
	}
	list, err := s.store.LoadAlerts(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]*jobcast.AlertInstance, len(list))
	for i := range list {
		m[list[i].Fingerprint] = &list[i]
	}
	s.mu.Lock()
	s.alerts = m
	s.mu.Unlock()
	return nil
}

// applyAPIRules puts in force the rules another node stored through the
// API; rules this node cannot compile leave its configuration as it is.
func (s *Service) applyAPIRules(doc string) {
	s.apiDoc = doc
	var rules []Rule
	if doc != "" {
		var err error
		if rules, err = parseRulesDoc([]byte(doc)); err != nil {
			s.log.Error("alerting: the rules stored through the API do not parse; keeping the rules in force", "err", err)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cc, err := compile(s.fileCfg.Merge(s.opt.Config), rules)
	if err != nil {
		s.reloadErr = fmt.Sprintf("the rules set through the API are not in force: %v", err)
		s.log.Error("alerting: the rules stored through the API are not valid here; keeping the rules in force", "err", err)
		return
	}
	s.apiRules, s.cc = rules, cc
	s.syncWorkersLocked()
}
