// Package alerting evaluates alert rules over the telemetry store and
// notifies receivers (SPEC §6), after Prometheus alerting rules and
// Alertmanager: a rule's condition makes an alert pending, then firing once
// it has held for the rule's `for`; a firing alert whose condition clears is
// resolved. Alerts are grouped by labels into one notification per route and
// group, deduplicated (a firing alert is notified once, then again only
// after the repeat interval), muted by silences, and sent by one goroutine
// and bounded queue per receiver, with retries, backoff, a timeout per
// attempt and a rate limit, so that a failing or hanging receiver delays
// neither evaluation nor the other receivers. Alert state, silences, the
// notification history and the rules set through the API are persisted in
// a jobcast.AlertStore, so a restart neither notifies again nor forgets a
// firing alert.
package alerting
