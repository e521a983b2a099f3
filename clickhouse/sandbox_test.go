package clickhouse

import (
	"strings"
	"testing"

	"github.com/jobcast/jobcast"
)

// TestCheck covers the sandbox's token check without a server: what
// readonly=2 lets through must be refused here.
func TestCheck(t *testing.T) {
	t.Parallel()
	s := &Store{db: "jobcast"}
	tests := []struct {
		q, refusal string // refusal "" means allowed
	}{
		{"SELECT count() FROM events", ""},
		{"SELECT count() FROM jobcast.events", ""},
		{"SELECT sum(number) FROM numbers(10)", ""},
		{"SELECT e.event FROM events AS e JOIN (SELECT job_id FROM events) AS j USING job_id", ""},
		{"SELECT 'FROM file(1)', \"system\" FROM events -- SETTINGS x=1", ""},
		{"SELECT format('{}', event) FROM events", ""},
		{"SELECT * FROM file('x.csv', 'CSV', 'a String')", "file() is not allowed"},
		{"SELECT * FROM url('http://x', CSV, 'a String')", "url() is not allowed"},
		{"SELECT * FROM remote('127.0.0.1', system.one)", "remote() is not allowed"},
		{"SELECT * FROM events WHERE job_id IN (SELECT a FROM mysql('h', 'd', 't', 'u', 'p'))", "mysql() is not allowed"},
		{"SELECT * FROM generateRandom('a Int8')", "table function generateRandom() is not allowed"},
		{"SELECT * FROM system.tables", "only the events table"},
		{"SELECT * FROM events WHERE job_id IN system.tables", "only the events table"},
		{"SELECT * FROM `system`.`tables`", "only the events table"},
		{"SELECT * FROM other.events", "only the events table"},
		{"SELECT * FROM events, other.t", "only the events table"},
		{"SELECT * FROM events AS a, (SELECT 1) AS b, file('x') AS c", "file() is not allowed"},
		{"SELECT count(), max(a, b) FROM events WHERE x IN (1, 2)", ""},
		{"SELECT dictGetString('d', 'a', toUInt64(1))", "dictGetString() is not allowed"},
		{"SELECT * FROM events SETTINGS max_execution_time = 0", "SETTINGS clause"},
		{"SELECT * FROM events FORMAT JSON", "FORMAT"},
		{"SELECT * FROM events INTO OUTFILE 'x'", "FORMAT"},
		{"SELECT * FROM events WHERE job_id = ?", "parameters"},
		{"SET readonly = 0", "single SELECT"},
		{"SHOW TABLES", "single SELECT"},
		{"SELECT 1; SELECT 2", "single SELECT"},
		{";", "empty"},
		{"-- only a comment", "empty"},
	}
	for _, tt := range tests {
		err := s.check(tokenize(tt.q))
		if tt.refusal == "" {
			if err != nil {
				t.Errorf("check(%q) = %v, want allowed", tt.q, err)
			}
			continue
		}
		if err == nil || jobcast.ErrorCode(err) != "E_BAD_REQUEST" || !strings.Contains(err.Error(), tt.refusal) {
			t.Errorf("check(%q) = %v, want E_BAD_REQUEST containing %q", tt.q, err, tt.refusal)
		}
	}
}

func TestRewrites(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"bools", "SELECT true, 'true', x = FALSE FROM events", "SELECT 1, 'true', x = 0 FROM events"},
		{"cte", "WITH e AS (SELECT * FROM events) SELECT count() FROM e", "SELECT count() FROM (SELECT * FROM events) AS e"},
		{"cte alias kept", "WITH e AS (SELECT 1) SELECT * FROM e AS x", "SELECT * FROM (SELECT 1) AS x"},
		{"chained ctes", "WITH a AS (SELECT 1 AS v), b AS (SELECT v FROM a) SELECT v FROM b JOIN a USING v",
			"SELECT v FROM (SELECT v FROM (SELECT 1 AS v) AS a) AS b JOIN (SELECT 1 AS v) AS a USING v"},
		{"expression with", "WITH 5 AS x SELECT x", "WITH 5 AS x SELECT x"},
	}
	for _, tt := range tests {
		if got := rewriteBools(inlineCTEs(tt.in)); got != tt.want {
			t.Errorf("%s: rewrite(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}
