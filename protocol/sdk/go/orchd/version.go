package orchd

import (
	"strconv"
	"strings"
)

// VersionValid reports whether v is a dotted version (PROTOCOL.md §5.1):
// one or more components separated by '.', each starting with a decimal
// digit ("0.1.0", "1.2", "2.0.0-rc1").
func VersionValid(v string) bool {
	if v == "" {
		return false
	}
	for _, part := range strings.Split(v, ".") {
		if part == "" || part[0] < '0' || part[0] > '9' {
			return false
		}
	}
	return true
}

func versionKey(v string) []int64 {
	var out []int64
	for _, part := range strings.Split(v, ".") {
		n := 0
		for n < len(part) && part[n] >= '0' && part[n] <= '9' {
			n++
		}
		x, err := strconv.ParseInt(part[:n], 10, 64)
		if err != nil && n > 0 {
			x = 1<<63 - 1 // saturate
		}
		out = append(out, x)
	}
	return out
}

// CompareVersions compares two dotted versions as PROTOCOL.md §5.1 says:
// component by component, numerically on each component's leading digits,
// a missing component counting as 0. It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	ka, kb := versionKey(a), versionKey(b)
	for i := 0; i < len(ka) || i < len(kb); i++ {
		var x, y int64
		if i < len(ka) {
			x = ka[i]
		}
		if i < len(kb) {
			y = kb[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
