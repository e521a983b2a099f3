package jobcast_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
)

// The docs are part of the protocol's contract: these tests keep the JSON
// examples in docs/protocol.md decodable by the real protocol types, and make
// sure every close code, error code, environment variable, serve flag and
// YAML key the code knows is documented.

const (
	protocolDoc   = "docs/protocol.md"
	operationsDoc = "docs/operations.md"
)

func readDoc(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(data)
}

// codeBlock is one fenced code block of a Markdown file.
type codeBlock struct {
	lang string
	tag  string // from a preceding <!-- example: tag --> line
	line int    // line number of the opening fence
	body string
}

var (
	fenceRE      = regexp.MustCompile("^```\\s*([A-Za-z0-9_-]*)\\s*$")
	exampleTagRE = regexp.MustCompile(`^<!--\s*example:\s*([a-z-]+)\s*-->$`)
)

// parseBlocks splits a Markdown document into its fenced code blocks. An
// example tag must be followed (blank lines aside) by a ```json fence.
func parseBlocks(doc string) ([]codeBlock, []error) {
	var (
		blocks  []codeBlock
		errs    []error
		cur     *codeBlock
		body    strings.Builder
		tag     string
		tagLine int
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur != nil {
			if strings.HasPrefix(line, "```") && strings.TrimSpace(strings.TrimLeft(line, "`")) == "" {
				cur.body = body.String()
				blocks = append(blocks, *cur)
				cur = nil
				continue
			}
			body.WriteString(line)
			body.WriteByte('\n')
			continue
		}
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			cur = &codeBlock{lang: m[1], line: n}
			body.Reset()
			if tag != "" {
				if m[1] != "json" {
					errs = append(errs, fmt.Errorf("line %d: example tag %q is followed by a ```%s block, want ```json", tagLine, tag, m[1]))
				}
				cur.tag = tag
				tag = ""
			}
			continue
		}
		if m := exampleTagRE.FindStringSubmatch(trimmed); m != nil {
			if tag != "" {
				errs = append(errs, fmt.Errorf("line %d: example tag %q is not followed by a code block", tagLine, tag))
			}
			tag, tagLine = m[1], n
			continue
		}
		if trimmed != "" && tag != "" {
			errs = append(errs, fmt.Errorf("line %d: example tag %q is not followed by a code block", tagLine, tag))
			tag = ""
		}
	}
	if cur != nil {
		errs = append(errs, fmt.Errorf("line %d: code block is never closed", cur.line))
	}
	if tag != "" {
		errs = append(errs, fmt.Errorf("line %d: example tag %q at the end of the file", tagLine, tag))
	}
	return blocks, errs
}

// decodeStrict decodes data into v, rejecting unknown fields, field names
// that differ from the documented ones only in case (encoding/json would
// accept them), and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return exactKeys(data, reflect.TypeOf(v), "")
}

var (
	rawMessageType = reflect.TypeOf(json.RawMessage(nil))
	timeType       = reflect.TypeOf(time.Time{})
)

// exactKeys checks that every object key in data is spelled exactly as a
// json tag of the struct type t it decodes into, recursively.
func exactKeys(data []byte, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	data = bytes.TrimSpace(data)
	if t == rawMessageType || t == timeType || len(data) == 0 || string(data) == "null" {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil // not an object: the decoder already judged it
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			fields[name] = f.Type
		}
		for k, v := range obj {
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("field %q: no such field (check its spelling and case)", path+k)
			}
			if err := exactKeys(v, ft, path+k+"."); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return nil
		}
		for i, it := range items {
			if err := exactKeys(it, t.Elem(), fmt.Sprintf("%s%d.", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil
		}
		for k, v := range obj {
			if err := exactKeys(v, t.Elem(), path+k+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonValues splits a block into its JSON values (a block may hold a
// sequence of frames, one per line).
func jsonValues(body string) ([]json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(body))
	var out []json.RawMessage
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("value %d: %w", len(out), err)
		}
		out = append(out, raw)
	}
	if len(out) == 0 {
		return nil, errors.New("empty block")
	}
	return out, nil
}

// serverPayloads maps each server message type to its payload type.
var serverPayloads = map[string]func() any{
	protocol.TypeReady:        func() any { return new(protocol.Ready) },
	protocol.TypeJobStarted:   func() any { return new(protocol.Started) },
	protocol.TypeJobProgress:  func() any { return new(protocol.Progress) },
	protocol.TypeJobCompleted: func() any { return new(protocol.Completed) },
	protocol.TypeJobFailed:    func() any { return new(protocol.ErrorPayload) },
	protocol.TypeError:        func() any { return new(protocol.ErrorPayload) },
	protocol.TypePing:         func() any { return new(protocol.Ping) },
	protocol.TypePong:         func() any { return new(protocol.Pong) },
}

// clientPayloads maps each client message type to its payload type.
var clientPayloads = map[string]func() any{
	protocol.TypeHello: func() any { return new(protocol.Hello) },
	protocol.TypePing:  func() any { return new(protocol.Ping) },
	protocol.TypePong:  func() any { return new(protocol.Pong) },
}

// producerPayloads maps each producer event type to the fields jobcast knows.
var producerPayloads = map[string]func() any{
	protocol.EventStarted:   func() any { return new(protocol.Started) },
	protocol.EventProgress:  func() any { return new(protocol.Progress) },
	protocol.EventCompleted: func() any { return new(protocol.Completed) },
	protocol.EventFailed:    func() any { return new(protocol.ErrorPayload) },
	protocol.EventError:     func() any { return new(protocol.ErrorPayload) },
}

var errorCodeRE = regexp.MustCompile(`^E_[A-Z0-9_]+$`)

func checkServerFrame(raw []byte) error {
	env, err := protocol.DecodeServerFrame(raw)
	if err != nil {
		return err
	}
	var strict protocol.Envelope
	if err := decodeStrict(raw, &strict); err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	if env.V != protocol.Version {
		return fmt.Errorf("v = %d, want %d", env.V, protocol.Version)
	}
	newPayload, ok := serverPayloads[env.Type]
	if !ok {
		return fmt.Errorf("unknown server message type %q", env.Type)
	}
	if env.JobID == "" || env.TS <= 0 {
		return fmt.Errorf("%s frame needs jobId and ts", env.Type)
	}
	switch {
	case env.Type == protocol.TypeError:
		// Job-level errors have a seq, connection-level ones do not.
	case protocol.IsJobMessage(env.Type):
		if env.Seq <= 0 {
			return fmt.Errorf("%s frame needs a seq", env.Type)
		}
		if env.Pipeline == "" {
			return fmt.Errorf("%s frame needs a pipeline", env.Type)
		}
	default:
		if env.Seq != 0 {
			return fmt.Errorf("%s frame must not carry a seq", env.Type)
		}
	}
	if len(env.Payload) == 0 {
		return fmt.Errorf("%s frame has no payload", env.Type)
	}
	p := newPayload()
	if err := decodeStrict(env.Payload, p); err != nil {
		return fmt.Errorf("%s payload: %w", env.Type, err)
	}
	switch v := p.(type) {
	case *protocol.Ready:
		if v.ConnectionID == "" || v.HeartbeatIntervalMs <= 0 || v.PongTimeoutMs <= 0 || v.State.JobID != env.JobID {
			return errors.New("ready payload needs connectionId, heartbeat settings and the job's state")
		}
		if v.State.Seq < 0 || v.State.Status == "" {
			return errors.New("ready state needs a status and seq")
		}
	case *protocol.ErrorPayload:
		if !errorCodeRE.MatchString(v.Code) || v.Message == "" {
			return fmt.Errorf("error payload needs an E_ code and a message, got %+v", v)
		}
	case *protocol.Ping:
		if v.ServerTime <= 0 {
			return errors.New("ping needs serverTime")
		}
	}
	return nil
}

func checkClientFrame(raw []byte) error {
	env, err := protocol.DecodeClientFrame(raw)
	if err != nil {
		return err
	}
	var strict protocol.Envelope
	if err := decodeStrict(raw, &strict); err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	newPayload, ok := clientPayloads[env.Type]
	if !ok {
		return fmt.Errorf("unexpected client message type %q", env.Type)
	}
	if len(env.Payload) > 0 {
		if err := decodeStrict(env.Payload, newPayload()); err != nil {
			return fmt.Errorf("%s payload: %w", env.Type, err)
		}
	}
	return nil
}

func checkProducerEvents(body []byte) error {
	events, err := protocol.ParseProducerEvents(body)
	if err != nil {
		return err
	}
	for i, ev := range events {
		if err := decodeStrict(ev.Payload, producerPayloads[ev.Type]()); err != nil {
			return fmt.Errorf("event %d (%s) payload: %w", i, ev.Type, err)
		}
	}
	return nil
}

// checkCreateJob runs a job creation body through the real job service, so
// that the example passes the server's own validation.
func checkCreateJob(body []byte) error {
	var req jobs.CreateRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	svc := jobs.New(inmem.NewJobStore(), inmem.NewBroker(), jobcast.NewCatalog(nil),
		jobcast.SystemClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := svc.Create(context.Background(), req); err != nil {
		return err
	}
	return nil
}

// checkers validate a whole block by its example tag.
var checkers = map[string]func(body string) error{
	"server-frame": func(body string) error { return eachValue(body, checkServerFrame) },
	"client-frame": func(body string) error { return eachValue(body, checkClientFrame) },
	"producer-events": func(body string) error {
		return checkProducerEvents([]byte(body))
	},
	"create-job": func(body string) error { return checkCreateJob([]byte(body)) },
	"token-response": func(body string) error {
		var v httpapi.TokenResponse
		if err := decodeStrict([]byte(body), &v); err != nil {
			return err
		}
		if v.JobID == "" || v.Token == "" || v.ExpiresAt.IsZero() || !strings.HasPrefix(v.WebsocketURL, "ws") {
			return fmt.Errorf("token response needs jobId, token, expiresAt and a ws(s) websocketUrl: %+v", v)
		}
		return nil
	},
	"append-response": func(body string) error {
		var v httpapi.AppendResponse
		if err := decodeStrict([]byte(body), &v); err != nil {
			return err
		}
		if v.Accepted < 1 || v.Seq < 1 || v.Status == "" {
			return fmt.Errorf("append response needs accepted, seq and status: %+v", v)
		}
		return nil
	},
	"job-state": func(body string) error {
		var v protocol.JobState
		if err := decodeStrict([]byte(body), &v); err != nil {
			return err
		}
		if v.JobID == "" || v.Pipeline == "" || v.Status == "" || v.CreatedAt.IsZero() {
			return fmt.Errorf("job state needs jobId, pipeline, status and createdAt: %+v", v)
		}
		return nil
	},
	"error-body": func(body string) error {
		var v httputil.ErrorBody
		if err := decodeStrict([]byte(body), &v); err != nil {
			return err
		}
		if !errorCodeRE.MatchString(v.Error.Code) || v.Error.Message == "" {
			return fmt.Errorf("error body needs an E_ code and a message: %+v", v)
		}
		return nil
	},
	"revoke-response": func(body string) error {
		var v struct {
			JobID           string    `json:"jobId"`
			TokensNotBefore time.Time `json:"tokensNotBefore"`
		}
		if err := decodeStrict([]byte(body), &v); err != nil {
			return err
		}
		if v.JobID == "" || v.TokensNotBefore.IsZero() {
			return fmt.Errorf("revoke response needs jobId and tokensNotBefore: %+v", v)
		}
		return nil
	},
}

func eachValue(body string, check func([]byte) error) error {
	vals, err := jsonValues(body)
	if err != nil {
		return err
	}
	for i, v := range vals {
		if err := check(v); err != nil {
			if len(vals) > 1 {
				return fmt.Errorf("value %d: %w", i, err)
			}
			return err
		}
	}
	return nil
}

func TestDocsProtocolJSONExamples(t *testing.T) {
	t.Parallel()
	blocks, errs := parseBlocks(readDoc(t, protocolDoc))
	for _, err := range errs {
		t.Errorf("%s: %v", protocolDoc, err)
	}
	counts := map[string]int{}
	for _, b := range blocks {
		if b.lang != "json" {
			continue
		}
		if b.tag == "" {
			t.Errorf("%s:%d: ```json block without an <!-- example: … --> tag", protocolDoc, b.line)
			continue
		}
		check, ok := checkers[b.tag]
		if !ok {
			t.Errorf("%s:%d: unknown example tag %q", protocolDoc, b.line, b.tag)
			continue
		}
		counts[b.tag]++
		if err := check(b.body); err != nil {
			t.Errorf("%s:%d: %s example: %v\n%s", protocolDoc, b.line, b.tag, err, b.body)
		}
	}
	// Every kind of example is present, and every server and client message
	// type has one.
	for tag := range checkers {
		if counts[tag] == 0 {
			t.Errorf("%s has no %s example", protocolDoc, tag)
		}
	}
	seen := map[string]bool{}
	for _, b := range blocks {
		if b.tag != "server-frame" && b.tag != "client-frame" {
			continue
		}
		vals, err := jsonValues(b.body)
		if err != nil {
			continue // reported above
		}
		for _, v := range vals {
			var env protocol.Envelope
			if json.Unmarshal(v, &env) == nil {
				seen[b.tag+"/"+env.Type] = true
			}
		}
	}
	for typ := range serverPayloads {
		if !seen["server-frame/"+typ] {
			t.Errorf("%s has no server-frame example of type %q", protocolDoc, typ)
		}
	}
	for typ := range clientPayloads {
		if !seen["client-frame/"+typ] {
			t.Errorf("%s has no client-frame example of type %q", protocolDoc, typ)
		}
	}
}

var (
	curlDataRE   = regexp.MustCompile(`-d\s+'([^']*)'`)
	eventsURLRE  = regexp.MustCompile(`/v1/jobs/[^/"'\s]+/events\b`)
	createURLRE  = regexp.MustCompile(`/v1/jobs["'\s]`)
	continuation = regexp.MustCompile(`\\\n\s*`)
)

// TestDocsProtocolCurlExamples checks the JSON bodies of the curl commands in
// shell blocks: event posts must parse as producer events, job creations must
// pass the job service's validation.
func TestDocsProtocolCurlExamples(t *testing.T) {
	t.Parallel()
	blocks, _ := parseBlocks(readDoc(t, protocolDoc))
	checked := 0
	for _, b := range blocks {
		if b.lang != "sh" && b.lang != "bash" && b.lang != "shell" {
			continue
		}
		for _, cmd := range strings.Split(continuation.ReplaceAllString(b.body, " "), "\n") {
			if !strings.Contains(cmd, "curl") {
				continue
			}
			m := curlDataRE.FindStringSubmatch(cmd)
			if m == nil {
				continue
			}
			data := m[1]
			var err error
			switch {
			case eventsURLRE.MatchString(cmd):
				err = checkProducerEvents([]byte(data))
			case createURLRE.MatchString(cmd):
				err = checkCreateJob([]byte(data))
			default:
				if !json.Valid([]byte(data)) {
					err = errors.New("body is not valid JSON")
				}
			}
			checked++
			if err != nil {
				t.Errorf("%s:%d: curl body %s: %v", protocolDoc, b.line, data, err)
			}
		}
	}
	if checked == 0 {
		t.Errorf("%s: found no curl command with a JSON body", protocolDoc)
	}
}

// constants returns name → value of the constants in a Go source file whose
// names start with prefix.
func constants(t *testing.T, path, prefix, valueRE string) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*(` + prefix + `\w*)\s*=\s*(` + valueRE + `)`)
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(readDoc(t, path), -1) {
		out[m[1]] = strings.Trim(m[2], `"`)
	}
	if len(out) == 0 {
		t.Fatalf("found no %s constants in %s", prefix, path)
	}
	return out
}

func TestDocsCloseCodes(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, protocolDoc)
	for name, code := range constants(t, "protocol/codes.go", "Close", `\d+`) {
		row := regexp.MustCompile(`(?m)^\|\s*` + "`?" + code + "`?" + `\s*\|`)
		if !row.MatchString(doc) {
			t.Errorf("%s: close code %s (%s) has no row in the close code table", protocolDoc, code, name)
		}
	}
}

func TestDocsErrorCodes(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, protocolDoc)
	// Every catalog entry is a table row with its default message and
	// retryable flag.
	for code, e := range jobcast.DefaultCatalog() {
		row := regexp.MustCompile(`(?m)^\|\s*` + "`" + regexp.QuoteMeta(code) + "`" + `\s*\|\s*` +
			regexp.QuoteMeta(e.Message) + `\s*\|\s*` + strconv.FormatBool(e.Retryable) + `\s*\|`)
		if !row.MatchString(doc) {
			t.Errorf("%s: no catalog row | `%s` | %s | %t |", protocolDoc, code, e.Message, e.Retryable)
		}
	}
	// Every error code constant is documented somewhere.
	for name, code := range constants(t, "protocol/codes.go", "Err", `"E_[A-Z0-9_]+"`) {
		if !strings.Contains(doc, "`"+code+"`") {
			t.Errorf("%s: error code %s (%s) is not documented", protocolDoc, code, name)
		}
	}
}

func TestDocsOperationsEnvVars(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, operationsDoc)
	files, err := filepath.Glob("cmd/jobcast/*.go")
	if err != nil {
		t.Fatal(err)
	}
	envRE := regexp.MustCompile(`JOBCAST_[A-Z_]+`)
	vars := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		for _, v := range envRE.FindAllString(readDoc(t, f), -1) {
			vars[v] = f
		}
	}
	if _, ok := vars["JOBCAST_ADDR"]; !ok {
		t.Fatalf("found no JOBCAST_ADDR in cmd/jobcast; the source moved?")
	}
	names := make([]string, 0, len(vars))
	for v := range vars {
		names = append(names, v)
	}
	sort.Strings(names)
	for _, v := range names {
		if !regexp.MustCompile(`\b` + v + `\b`).MatchString(doc) {
			t.Errorf("%s: environment variable %s (read in %s) is not documented", operationsDoc, v, vars[v])
		}
	}
}

func TestDocsOperationsFlagsAndYAMLKeys(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, operationsDoc)
	flagRE := regexp.MustCompile(`f\.fs\.\w+Var\(&f\.\w+,\s*"([a-z0-9-]+)"`)
	flags := flagRE.FindAllStringSubmatch(readDoc(t, "cmd/jobcast/config.go"), -1)
	if len(flags) == 0 {
		t.Fatal("found no serve flags in cmd/jobcast/config.go")
	}
	for _, m := range flags {
		if !strings.Contains(doc, "`-"+m[1]) && !strings.Contains(doc, "`--"+m[1]) {
			t.Errorf("%s: serve flag -%s is not documented", operationsDoc, m[1])
		}
	}
	typ := reflect.TypeOf(jobcast.Config{})
	for i := range typ.NumField() {
		key, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			continue
		}
		if !strings.Contains(doc, "`"+key+"`") {
			t.Errorf("%s: YAML key %s (Config.%s) is not documented", operationsDoc, key, typ.Field(i).Name)
		}
	}
}
