// Package gql is the GraphQL query surface of the telemetry metrics (SPEC
// §4, POST /graphql): typed queries over the metrics library with a time
// window, filters and group-by on the client dimensions, so the dashboard's
// questions ("how healthy are connections on cellular?", "which errors hit
// most sessions?", "what is p95 heartbeat RTT per pipeline?") are one query
// each.
//
// The schema is written by hand except for the MetricName and Dimension
// enums, which are generated from metrics.Definitions and
// metrics.Dimensions: a metric added to the library is queryable without
// touching this package. Every number comes from metrics.Library, the one
// implementation the dashboard, alerts and experiment analysis share.
//
// Bad input (an unknown metric, an empty window, a malformed duration) is
// answered as a GraphQL error with a message meant for the caller and the
// jobcast error code in extensions.code; internal failures are logged and
// answered as "internal error", never with their text.
package gql
