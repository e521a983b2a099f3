package httpapi

import (
	"net/http"
	"strconv"

	"github.com/jobcast/jobcast"
)

// DurableHeader tells a producer whether what it was just acknowledged is on
// disk. "false" means the job store refused the write (a full disk, a
// read-only data dir) and the node delivered it from memory, where it waits
// to be written: a crash before then loses it (docs/security.md section 4).
const DurableHeader = "X-Jobcast-Durable"

// durable reports whether the accepted job revision is in the job store and
// says so in the DurableHeader.
func (a *API) durable(w http.ResponseWriter, job *jobcast.Job) bool {
	d := a.opt.Jobs.Durable(job)
	w.Header().Set(DurableHeader, strconv.FormatBool(d))
	return d
}
