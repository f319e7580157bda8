package orchd

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shared conformance vectors (protocol/vectors/README.md), run through
// ParseLine exactly as check.py runs them through the Python codec.
var vectorsFile = filepath.Join("..", "..", "..", "vectors", "messages.jsonl")

type vector struct {
	Dir     string  `json:"dir"`
	Line    *string `json:"line"`
	LineHex *string `json:"line_hex"`
	LineGen *struct {
		Prefix string `json:"prefix"`
		Fill   string `json:"fill"`
		Total  int    `json:"total"`
		Suffix string `json:"suffix"`
	} `json:"line_gen"`
	Expect string `json:"expect"`
	Note   string `json:"note"`
}

func (v *vector) raw() ([]byte, error) {
	switch {
	case v.Line != nil:
		return []byte(*v.Line), nil
	case v.LineHex != nil:
		return hex.DecodeString(*v.LineHex)
	case v.LineGen != nil:
		g := v.LineGen
		n := g.Total - len(g.Prefix) - len(g.Suffix)
		return []byte(g.Prefix + strings.Repeat(g.Fill, n) + g.Suffix), nil
	}
	return nil, fmt.Errorf("no line, line_hex or line_gen")
}

func TestVectors(t *testing.T) {
	f, err := os.Open(vectorsFile)
	if err != nil {
		t.Fatalf("the vectors: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	count, failed := 0, 0
	for lineno := 1; sc.Scan(); lineno++ {
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 || text[0] == '#' {
			continue
		}
		var v vector
		if err := json.Unmarshal(text, &v); err != nil {
			t.Fatalf("%s:%d: %v", vectorsFile, lineno, err)
		}
		raw, err := v.raw()
		if err != nil {
			t.Fatalf("%s:%d: %v", vectorsFile, lineno, err)
		}
		dir := FromExt
		switch v.Dir {
		case "to_ext":
			dir = ToExt
		case "from_ext":
		default:
			t.Fatalf("%s:%d: unknown dir %q", vectorsFile, lineno, v.Dir)
		}
		count++
		if got := ParseLine(dir, raw).String(); got != v.Expect {
			failed++
			t.Errorf("%s:%d (%s): expected [%s], got [%s]", vectorsFile, lineno, v.Note, v.Expect, got)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if count < 100 {
		t.Fatalf("only %d vectors read", count)
	}
	t.Logf("%d vectors, %d failures", count, failed)
}
