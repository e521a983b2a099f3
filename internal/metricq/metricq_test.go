package metricq_test

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/metricq"
	"github.com/jobcast/jobcast/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"5m", 5 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{" 24h ", 24 * time.Hour, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"30d", 30 * 24 * time.Hour, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"", 0, "is empty"},
		{"0s", 0, "must be positive"},
		{"0d", 0, "must be positive"},
		{"-1h", 0, "must be positive"},
		{"1.5d", 0, "whole number of days"},
		{"d", 0, "whole number of days"},
		{"99999999999d", 0, "whole number of days"},
		{"5x", 0, "not a duration"},
		{"1y", 0, "not a duration"},
	} {
		got, err := metricq.ParseDuration("bucket", c.in)
		if c.err == "" {
			if err != nil || got != c.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
			continue
		}
		if jobcast.ErrorCode(err) != protocol.ErrBadRequest || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "bucket") {
			t.Errorf("ParseDuration(%q) = %v, %v; want a bad request about bucket containing %q", c.in, got, err, c.err)
		}
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 5, 11, 0, 0, 0, time.FixedZone("UTC+2", 2*3600))
	at := func(s string) time.Time {
		v, err := metricq.ParseTime("t", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name, last, from, to string
		wantFrom, wantTo     string
		err                  string
	}{
		{"default", "", "", "", "2026-01-05T08:00:00Z", "2026-01-05T09:00:00Z", ""},
		{"last", "24h", "", "", "2026-01-04T09:00:00Z", "2026-01-05T09:00:00Z", ""},
		{"days", "7d", "", "", "2025-12-29T09:00:00Z", "2026-01-05T09:00:00Z", ""},
		{"from_to", "", "2026-01-05T10:00:00+01:00", "2026-01-05T10:30:00Z", "2026-01-05T09:00:00Z", "2026-01-05T10:30:00Z", ""},
		{"from_only", "", "2026-01-05T08:15:00.5Z", "", "2026-01-05T08:15:00.5Z", "2026-01-05T09:00:00Z", ""},
		{"both", "1h", "2026-01-05T08:00:00Z", "", "", "", "either last or from/to"},
		{"to_only", "", "", "2026-01-05T08:00:00Z", "", "", "to needs a from"},
		{"empty", "", "2026-01-05T08:00:00Z", "2026-01-05T08:00:00Z", "", "", "window is empty"},
		{"bad_last", "soon", "", "", "", "", `last "soon" is not a duration`},
	} {
		var from, to time.Time
		if c.from != "" {
			from = at(c.from)
		}
		if c.to != "" {
			to = at(c.to)
		}
		f, tt, err := metricq.Window(c.last, from, to, now)
		if c.err != "" {
			if jobcast.ErrorCode(err) != protocol.ErrBadRequest || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !f.Equal(at(c.wantFrom)) || !tt.Equal(at(c.wantTo)) || f.Location() != time.UTC || tt.Location() != time.UTC {
			t.Errorf("%s: [%v, %v) %v; want [%s, %s) in UTC", c.name, f, tt, err, c.wantFrom, c.wantTo)
		}
	}
	if _, err := metricq.ParseTime("from", "5 Jan"); err == nil || !strings.Contains(err.Error(), `from "5 Jan" is not an RFC 3339 time`) {
		t.Errorf("ParseTime: %v", err)
	}
}

func TestDimension(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"pipeline": "pipeline", "network_type": "network_type", "networkType": "network_type",
		"appVersion": "app_version", "os_version": "os_version", "deviceModel": "device_model",
	} {
		if got, err := metricq.Dimension(in); err != nil || got != want {
			t.Errorf("Dimension(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "color", "NetworkType", "network-type", "job_id"} {
		if _, err := metricq.Dimension(in); jobcast.ErrorCode(err) != protocol.ErrBadRequest || !strings.Contains(err.Error(), "dimensions are pipeline, app_version") {
			t.Errorf("Dimension(%q) = %v", in, err)
		}
	}
	if got := metricq.Param("device_model"); got != "deviceModel" {
		t.Errorf("Param(device_model) = %q", got)
	}
}
