package orchd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Logger is a *slog.Logger whose records become log lines of the action
// (slog's Debug, Info, Warn and Error levels map to orchd's debug, info,
// warning and error): "message key=value ...".
func (a *Action) Logger() *slog.Logger { return slog.New(&slogHandler{a: a}) }

type slogHandler struct {
	a      *Action
	attrs  string // pre-formatted " k=v" of WithAttrs
	prefix string // group prefix, "g."
}

func (h *slogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(at slog.Attr) bool {
		appendAttr(&b, h.prefix, at)
		return true
	})
	level := LevelInfo
	switch {
	case r.Level >= slog.LevelError:
		level = LevelError
	case r.Level >= slog.LevelWarn:
		level = LevelWarning
	case r.Level < slog.LevelInfo:
		level = LevelDebug
	}
	return h.a.Log(level, "%s", b.String())
}

func appendAttr(b *strings.Builder, prefix string, at slog.Attr) {
	v := at.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if at.Key != "" {
			p += at.Key + "."
		}
		for _, g := range v.Group() {
			appendAttr(b, p, g)
		}
		return
	}
	if at.Key == "" {
		return
	}
	s := v.String()
	if s == "" || strings.ContainsAny(s, " \t\"=") {
		s = fmt.Sprintf("%q", s)
	}
	b.WriteString(" " + prefix + at.Key + "=" + s)
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	for _, at := range attrs {
		appendAttr(&b, h.prefix, at)
	}
	return &slogHandler{a: h.a, attrs: h.attrs + b.String(), prefix: h.prefix}
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &slogHandler{a: h.a, attrs: h.attrs, prefix: h.prefix + name + "."}
}
