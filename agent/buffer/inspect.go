package buffer

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Summary is what Inspect finds in a log directory.
type Summary struct {
	Segments int    // segment files
	Records  uint64 // whole records in them
	Bytes    int64  // bytes of those records
	Waiting  uint64 // records not yet acknowledged by the broker
}

// Inspect reads a log directory without changing anything (a running agent
// may own it): the segments' whole records, and how many of them wait for
// the broker according to the saved state. Damaged data is not counted.
// It is for `agent doctor`; the agent itself uses Open.
func Inspect(dir string) (Summary, error) {
	var st state
	if data, err := os.ReadFile(filepath.Join(dir, stateName)); err == nil {
		_ = json.Unmarshal(data, &st) // unreadable: everything counts as waiting
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return Summary{}, fmt.Errorf("buffer: %w", err)
	}
	var s Summary
	for _, e := range ents {
		name := e.Name()
		if len(name) != segNameLen || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil || first == 0 {
			continue
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		res := scanSegment(f, math.MaxUint64)
		f.Close()
		s.Segments++
		s.Records += res.n
		s.Bytes += res.valid
		for off := first; off < first+res.n; off++ {
			if off > st.Acked && !inSpans(st.Done, off) {
				s.Waiting++
			}
		}
	}
	return s, nil
}

func inSpans(spans [][2]uint64, off uint64) bool {
	for _, sp := range spans {
		if off >= sp[0] && off <= sp[1] {
			return true
		}
	}
	return false
}
