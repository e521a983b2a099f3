// Package dashboard serves the operators' live dashboard at /dashboard
// (SPEC §5): connection health, errors, latency, client segments and
// throughput over 1h, 24h, 7d or 30d, filtered by pipeline and client
// context, updated every few seconds over Server-Sent Events, plus a job
// inspector.
//
// Every figure on the page is computed in one place, Overview, from the
// metrics library, so the page, GraphQL and alert rules read the same
// numbers for the same window and filters. The only exceptions are the live
// figures of this node (open connections, from the hub) and the job
// inspector's raw rows (the job's state and its telemetry events).
//
// The page is plain HTML, CSS and JavaScript embedded with embed.FS, with a
// small hand-written SVG chart module: building jobcast never needs Node.
// The page logs in with the admin token and then holds an HMAC-signed
// session cookie, never the token itself; the JSON endpoints also take the
// token as a Bearer header, as the other admin APIs do.
package dashboard
