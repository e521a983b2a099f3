package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/protocol"
)

// SQL limits of POST /v1/sql.
const (
	sqlTimeout = 10 * time.Second
	sqlMaxRows = 10000
	sqlMaxText = 64 << 10
)

// SQLResponse is the answer of POST /v1/sql: column names, one object per
// row, and whether the row limit cut the answer short.
type SQLResponse struct {
	Dialect   string           `json:"dialect"`
	Columns   []string         `json:"columns"`
	Data      []map[string]any `json:"data"`
	Rows      int              `json:"rows"`
	Truncated bool             `json:"truncated"`
	ElapsedMs float64          `json:"elapsedMs"`
}

// sql runs read-only SQL on the events table. The body is the SQL text, as
// Analytics Engine's SQL API takes it, or JSON {"query": "..."}.
func (a *API) sql(w http.ResponseWriter, r *http.Request) {
	body, err := a.readBody(w, r)
	if err != nil {
		httputil.WriteError(w, 0, err)
		return
	}
	query := string(bytes.TrimSpace(body))
	if len(body) > 0 && body[0] == '{' {
		var req struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrBadRequest, "malformed JSON body: send the SQL text, or {\"query\": \"SELECT ...\"}"))
			return
		}
		query = req.Query
	}
	if query == "" {
		httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrBadRequest, "no query: send the SQL text, or {\"query\": \"SELECT ...\"}"))
		return
	}
	if len(query) > sqlMaxText {
		httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrTooLarge, "query longer than %d bytes", sqlMaxText))
		return
	}
	start := time.Now()
	rows, err := a.opt.Telemetry.QueryUntrusted(r.Context(), query, jobcast.QueryLimits{Timeout: sqlTimeout, MaxRows: sqlMaxRows})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp := SQLResponse{
		Dialect:   a.opt.Telemetry.Dialect(),
		Columns:   rows.Columns,
		Data:      make([]map[string]any, 0, len(rows.Rows)),
		Rows:      len(rows.Rows),
		Truncated: rows.Truncated,
		ElapsedMs: float64(time.Since(start).Microseconds()) / 1000,
	}
	for _, row := range rows.Rows {
		obj := make(map[string]any, len(row))
		for i, v := range row {
			if i < len(rows.Columns) {
				obj[rows.Columns[i]] = v
			}
		}
		resp.Data = append(resp.Data, obj)
	}
	httputil.WriteJSON(w, http.StatusOK, resp)
}
