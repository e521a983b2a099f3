// Package demo simulates the traffic jobcast is built for: producers running
// CSV imports, batch enrichments and AI scans with realistic progress rates
// and occasional errors, and mobile clients (mixed app and OS versions,
// wifi and cellular, several device models) that watch them, lose their
// connection now and then, and resume.
//
// It drives any jobcast server through the public Go SDK only, so what it
// shows is what a real client and producer would see. `jobcast demo` runs it
// against an embedded node; later load tools reuse its profiles.
package demo
