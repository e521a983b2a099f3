package demo

import (
	"math/rand/v2"
	"strings"

	"github.com/jobcast/jobcast/client"
)

// RandomClientContext draws a client context from the demo's mix of app
// and OS versions, networks and device models, so that other simulations
// (the load generator) produce the same segments. r must not be shared
// between goroutines.
func RandomClientContext(r *rand.Rand) client.ClientContext {
	osv := osVersions[r.IntN(len(osVersions))]
	family := "Android"
	if strings.HasPrefix(osv, "iOS") {
		family = "iOS"
	}
	ds := devices[family]
	return client.ClientContext{
		AppVersion:  appVersions[r.IntN(len(appVersions))],
		OSVersion:   osv,
		NetworkType: networks[r.IntN(len(networks))],
		DeviceModel: ds[r.IntN(len(ds))],
	}
}

// Pipelines names the demo's pipelines.
func Pipelines() []string {
	names := make([]string, len(pipelines))
	for i, p := range pipelines {
		names[i] = p.name
	}
	return names
}
