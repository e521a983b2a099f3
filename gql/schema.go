package gql

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/jobcast/jobcast/metrics"
)

// schemaText is the schema without its generated enums.
const schemaText = `
schema {
  query: Query
}

"""
Telemetry metrics (SPEC §4). Every query takes a time window (the last hour
when none is given), equality filters on the client dimensions and, where it
groups, a list of dimensions. Counts are Float because GraphQL's Int has 32
bits and frames, bytes and events over 30 days can pass 2^31; whole numbers
print without a fraction.
"""
type Query {
  "Every metric: name, unit, description and its exact formula over the events table."
  metrics: [MetricDefinition!]!

  """
  Any metric of metrics, over the window, filtered, grouped by the groupBy
  dimensions and, with bucket (a duration such as 5m, 1h or 1d), as a time
  series of buckets aligned to the Unix epoch.
  """
  metric(name: MetricName!, window: Window, filter: Filter, groupBy: [Dimension!], bucket: String): MetricSeries!

  """
  Connection health per group: connections opened, failed attempts, success
  rate, average connection duration and reconnects per session. Groups are
  ordered by their values.
  """
  connectionHealth(window: Window, filter: Filter, groupBy: [Dimension!]): [ConnectionHealth!]!

  """
  The most frequent errors (error and connect_failed events) by code,
  provider and retryable: most frequent first, ties by more sessions, then by
  code. limit is 1 to 1000.
  """
  errors(window: Window, filter: Filter, limit: Int = 10): [ErrorCount!]!

  """
  Heartbeat round trip per group (weighted by sample_interval). Groups without
  heartbeats in the window are left out.
  """
  heartbeatRtt(window: Window, filter: Filter, groupBy: [Dimension!]): [HeartbeatRtt!]!

  "This node's live figures: open connections and totals since it started."
  live: Live!

  """
  An experiment's analysis (SPEC §7): per arm units, estimates with 95 %
  intervals, lifts, p-values (Holm-corrected), the sample-ratio check and
  verdicts; the same document as GET /v1/experiments/{id}/results
  (docs/experiments.md), field by field.
  """
  experimentResults(id: String!): ExperimentResults!

  "Every experiment, as GET /v1/experiments lists them (SPEC §7)."
  experiments: [Experiment!]!
}

"An instant, RFC 3339: 2026-01-05T10:00:00Z (fractions and offsets allowed)."
scalar Time

"""
The time window [from, to): either the span last up to now, or from and to.
Without either, the last hour.
"""
input Window {
  "A span up to now: 1h, 24h, 7d, 30d (any Go duration such as 15m, or whole days such as 90d)."
  last: String
  "Start of the window (inclusive)."
  from: Time
  "End of the window (exclusive); now when only from is given."
  to: Time
}

"""
Equality filters on the client context and pipeline; every given field must
match. An empty string matches events without a value (job-level events carry
the pipeline but no client context).
"""
input Filter {
  pipeline: String
  appVersion: String
  osVersion: String
  networkType: String
  deviceModel: String
}

"The values of a point's group: the grouped dimensions, null for the others."
type Group {
  pipeline: String
  appVersion: String
  osVersion: String
  networkType: String
  deviceModel: String
}

type MetricDefinition {
  "The name to pass to metric(name:)."
  name: MetricName!
  "The metric's name in the REST API, alert rules and the dashboard (connection_success_rate)."
  key: String!
  unit: String!
  description: String!
  "The exact definition over the events table; w is sample_interval, Σw[e] the sum of w over events named e in the window."
  formula: String!
}

type MetricSeries {
  name: MetricName!
  key: String!
  unit: String!
  from: Time!
  to: Time!
  "The bucket width as given, null for one point per group."
  bucket: String
  groupBy: [Dimension!]!
  """
  Ordered by time, then by group. A ratio, average or quantile with nothing to
  divide by has no point (a gap, not a zero); counts have a point in every
  bucket for every group seen in the window.
  """
  points: [Point!]!
}

type Point {
  "The bucket's start (aligned to the epoch, so the first may start before from), or from without bucket."
  time: Time!
  "null without groupBy."
  group: Group
  value: Float!
  """
  What value rests on: a ratio's denominator, the samples of an average or
  quantile, a count itself, the seconds of a per-second rate. Combine points
  with Σ(value·weight)/Σweight.
  """
  weight: Float!
}

type ConnectionHealth {
  "null without groupBy."
  group: Group
  "Connections opened (connected + reconnected)."
  connections: Float!
  "Connection attempts that failed before the WebSocket opened."
  connectFailures: Float!
  "connections / (connections + connectFailures); null without attempts."
  successRate: Float
  "Mean lifetime of the connections that ended in the window; null when none ended."
  avgDurationMs: Float
  "Reconnects per session (job) that had a connection; null without connections."
  reconnectsPerSession: Float
}

type ErrorCount {
  "The error code; a connect_failed without one is listed under its reason (token_expired, …)."
  code: String!
  provider: String!
  retryable: Boolean!
  "Events, weighted by sample_interval."
  count: Float!
  "Distinct sessions (jobs) the errors happened to."
  sessions: Float!
}

type HeartbeatRtt {
  "null without groupBy."
  group: Group
  avg: Float!
  p50: Float!
  p95: Float!
  p99: Float!
  "Heartbeats the figures rest on, weighted by sample_interval."
  samples: Float!
}

"""
An experiment's analysis: the document of GET /v1/experiments/{id}/results.
Estimates without data (NaN or infinite) are null, as in REST.
"""
type ExperimentResults {
  experimentId: String!
  parameter: String!
  status: String!
  computedAt: Time!
  "The arm every other is compared with."
  control: String!
  arms: [ExperimentArm!]!
  srm: Srm!
  "The units every arm needs before a verdict."
  minUnitsPerArm: Float!
  "Whether every arm has minUnitsPerArm units."
  enoughUnits: Boolean!
  metrics: [ExperimentMetric!]!
  "Why verdicts are withheld (too few units, SRM, …); empty when none are (REST leaves the key out then)."
  warnings: [String!]!
}

"An arm's enrollment."
type ExperimentArm {
  name: String!
  "The parameter's value in the arm."
  value: Float!
  "Units (jobs) exposed to the arm."
  units: Float!
  expectedShare: Float
  observedShare: Float
}

"The sample-ratio-mismatch check (chi-square test of the observed against the expected shares)."
type Srm {
  chiSquare: Float
  p: Float
  flagged: Boolean!
}

"A metric: each arm's estimate and each treatment arm's comparison with the control."
type ExperimentMetric {
  name: String!
  "The method: welch_t, two_proportion_z, delta_ratio or quantile_z."
  test: String!
  description: String!
  arms: [ExperimentArmMetric!]!
  comparisons: [ExperimentComparison!]!
}

"A metric's estimate in one arm with its 95 % interval [lo, hi], and the units (or samples) n it rests on."
type ExperimentArmMetric {
  name: String!
  value: Float
  lo: Float
  hi: Float
  n: Float!
}

"A treatment arm against the control: difference and relative lift with 95 % intervals."
type ExperimentComparison {
  variant: String!
  diff: Float
  diffLo: Float
  diffHi: Float
  lift: Float
  liftLo: Float
  liftHi: Float
  p: Float
  "p after Holm's correction over every comparison of the experiment."
  pAdjusted: Float
  "pAdjusted < 0.05 with enough units in every arm and no sample ratio mismatch."
  significant: Boolean!
}

"""
An experiment, as GET /v1/experiments/{id} returns it; fields REST leaves out
when empty are null.
"""
type Experiment {
  id: String!
  description: String
  parameter: String!
  "The two-arm form: the control's and the variant's values, and the variant's share."
  control: Float
  variant: Float
  split: Float
  "The arms with their weights; the first is the control."
  variants: [ExperimentVariant!]
  "The share of eligible units enrolled."
  coverage: Float!
  segment: Segment!
  namespace: Namespace
  unit: String!
  seed: String
  status: String!
  minUnitsPerArm: Float
  createdAt: Time
  updatedAt: Time
  startedAt: Time
  stoppedAt: Time
}

type ExperimentVariant {
  name: String!
  value: Float!
  weight: Float!
}

"A named range [start, end) of the namespace hash: experiments in one namespace with disjoint ranges share no unit."
type Namespace {
  name: String!
  start: Float!
  end: Float!
}

"The clients an experiment is restricted to; null fields match everything."
type Segment {
  networkType: [String!]
  pipeline: [String!]
  "Exact models, or prefixes ending in '*'."
  deviceModel: [String!]
  "A semver-aware constraint such as \"iOS >=17\"."
  osVersion: String
  appVersion: String
}

type Live {
  "Open WebSocket connections on this node now."
  connections: Float!
  "Frames sent to clients since the node started."
  framesSent: Float!
  "Bytes sent to clients since the node started."
  bytesSent: Float!
  "Progress frames coalesced away by throttling since the node started."
  throttled: Float!
}
`

var enumValueRE = regexp.MustCompile(`^[_A-Za-z][_0-9A-Za-z]*$`)

// enumValue is the GraphQL enum value of a metric or dimension name:
// connection_success_rate → CONNECTION_SUCCESS_RATE.
func enumValue(name string) string { return strings.ToUpper(name) }

// fromEnum is the inverse of enumValue.
func fromEnum(v string) string { return strings.ToLower(v) }

// schema returns the full schema text: schemaText and the MetricName and
// Dimension enums generated from the metrics library.
func schema() (string, error) {
	var sb strings.Builder
	sb.WriteString("\n\"A metric of the library (see metrics for formulas and units).\"\nenum MetricName {\n")
	for _, d := range metrics.Definitions() {
		v := enumValue(d.Name)
		if !enumValueRE.MatchString(v) || fromEnum(v) != d.Name {
			return "", fmt.Errorf("gql: metric name %q cannot be a GraphQL enum value", d.Name)
		}
		desc := strings.ReplaceAll(d.Description+" Unit: "+d.Unit+". "+d.Formula, `"""`, `'''`)
		fmt.Fprintf(&sb, "  \"\"\"\n  %s\n  \"\"\"\n  %s\n", desc, v)
	}
	sb.WriteString("}\n\n\"A dimension to group by: a column of the client context, or the pipeline.\"\nenum Dimension {\n")
	for _, d := range metrics.Dimensions() {
		v := enumValue(d)
		if !enumValueRE.MatchString(v) || fromEnum(v) != d {
			return "", fmt.Errorf("gql: dimension %q cannot be a GraphQL enum value", d)
		}
		fmt.Fprintf(&sb, "  %s\n", v)
	}
	sb.WriteString("}\n")
	return schemaText + sb.String(), nil
}
