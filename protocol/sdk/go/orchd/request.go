package orchd

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Source is a source orchd fetches into the workdir (PROTOCOL.md §6.3):
// a git checkout (Git, Ref, Path) or a verified download (URL, SHA256,
// Dest). Only http://, https:// and (git) git:// URLs are accepted from an
// extension; Path and Dest are relative to the workdir.
type Source struct {
	Git  string `json:"git,omitempty"`
	Ref  string `json:"ref,omitempty"`
	Path string `json:"path,omitempty"`

	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Dest   string `json:"dest,omitempty"`
}

// Fetched is what a fetch got: Type "git" (Commit: the checked-out
// commit) or "url" (SHA256: the verified digest); Path is relative to the
// workdir.
type Fetched struct {
	Type, Path, Commit, SHA256 string
}

// RequestError is a request orchd refused or could not do (a response
// with ok false). It does not end the action: the handler decides.
type RequestError struct {
	Op      string
	ID      int64
	Message string // orchd's one-line reason
}

func (e *RequestError) Error() string { return e.Op + ": " + e.Message }

// Reason classifies Message by the prefixes of PROTOCOL.md §6.3:
// "invalid source", "source not allowed", "cannot fetch", "cancelled",
// "unknown request op", or "" for any other text.
func (e *RequestError) Reason() string {
	for _, p := range []string{"invalid source: ", "source not allowed: ", "cannot fetch ", "unknown request op "} {
		if strings.HasPrefix(e.Message, p) {
			return strings.TrimRight(p, ": ")
		}
	}
	if e.Message == "cancelled" {
		return "cancelled"
	}
	return ""
}

// Fetch asks orchd to fetch src into the workdir and waits for the answer
// (or for ctx). orchd caches downloads and git mirrors; a refused or failed
// fetch is a *RequestError.
func (a *Action) Fetch(ctx context.Context, src Source) (Fetched, error) {
	res, err := a.Request(ctx, "fetch", map[string]any{"source": src})
	if err != nil {
		return Fetched{}, err
	}
	str := func(k string) string { s, _ := res[k].(string); return s }
	return Fetched{Type: str("type"), Path: str("path"), Commit: str("commit"), SHA256: str("sha256")}, nil
}

// Request sends a request with operation op and the given fields (besides
// type, id and op) and waits for orchd's response: its result object, or a
// *RequestError. orchd 0.1.0 knows op "fetch" only (see Fetch); an op it
// does not know is answered with an error (Reason "unknown request op").
// When ctx is done first it returns context.Cause(ctx).
func (a *Action) Request(ctx context.Context, op string, fields map[string]any) (map[string]any, error) {
	if op == "" {
		return nil, errors.New("orchd: a request needs an op")
	}
	r := a.r
	id := r.nextID.Add(1)
	msg := map[string]any{}
	for k, v := range fields {
		msg[k] = v
	}
	msg["type"], msg["id"], msg["op"] = "request", id, op
	ch := make(chan map[string]any, 1)
	r.pendMu.Lock()
	r.pending[id] = ch
	r.pendMu.Unlock()
	forget := func() {
		r.pendMu.Lock()
		delete(r.pending, id)
		r.pendMu.Unlock()
	}
	if err := a.send(msg); err != nil {
		forget()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	select {
	case resp := <-ch:
		if ok, _ := resp["ok"].(bool); !ok {
			text, _ := resp["error"].(string)
			return nil, &RequestError{Op: op, ID: id, Message: text}
		}
		res, _ := resp["result"].(map[string]any)
		return res, nil
	case <-ctx.Done():
		forget()
		return nil, context.Cause(ctx)
	}
}
