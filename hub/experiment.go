package hub

import (
	"context"
	"time"

	"github.com/jobcast/jobcast"
)

// assignParams asks Options.Params for the connection's experiment values.
// A failure keeps the defaults: an experiment never keeps a client from
// its job.
func (c *conn) assignParams(ctx context.Context, pipeline string) jobcast.ParamValues {
	if c.h.opt.Params == nil {
		return nil
	}
	c.mu.Lock()
	cc := c.cc
	c.mu.Unlock()
	vals, err := c.h.opt.Params.Assign(ctx, jobcast.ExperimentUnit{
		UnitID: c.jobID, Pipeline: pipeline, AppVersion: cc.AppVersion, OSVersion: cc.OSVersion,
		NetworkType: cc.NetworkType, DeviceModel: cc.DeviceModel,
	})
	if err != nil {
		c.h.opt.Log.Warn("experiment assignment failed; using defaults", "job", c.jobID, "err", err)
		return nil
	}
	return vals
}

// applyParamsLocked sets the connection's heartbeat and throttle from the
// experiment values, before ready announces them. A new connection
// parameter is read here. Call with c.mu held.
func (c *conn) applyParamsLocked(vals jobcast.ParamValues) {
	if v, ok := vals.Value(jobcast.ParamHeartbeatInterval); ok {
		c.heartbeat = time.Duration(v) * time.Millisecond
	}
	if v, ok := vals.Value(jobcast.ParamThrottle); ok {
		c.thr.window = time.Duration(v) * time.Millisecond
	}
}

// exposeLocked records the exposure of each value applied for the first
// time to its unit, once ready (which carries the values) is queued. Call
// with c.mu held.
func (c *conn) exposeLocked(vals jobcast.ParamValues) {
	for _, p := range vals {
		if p.Expose {
			c.h.opt.Recorder.Record(p.ExposureEvent(c.eventLocked(jobcast.EventExposure)))
		}
	}
}
