// Package demo simulates the traffic jobcast is built for: producers running
// CSV imports, batch enrichments and AI scans with realistic progress rates
// and occasional errors, and mobile clients (mixed app and OS versions,
// wifi and cellular, several device models) that watch them, lose their
// connection now and then, and resume.
//
// The traffic is healthy on purpose: none of the default alert rules fires
// on it (see the pipelines' pacing and the trouble budget in demo.go), so
// that an alert in the demo means something — the error burst that
// Options.ErrorBurst injects.
//
// It drives any jobcast server through the public Go SDK only, so what it
// shows is what a real client and producer would see. `jobcast demo` runs it
// against an embedded node; later load tools reuse its profiles.
package demo
