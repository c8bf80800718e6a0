package buffer

import "sort"

// doneSet is the set of offsets that need no delivery: acked, rejected,
// dropped or lost. Everything up to mark is done; above it, done offsets
// are kept as sorted, disjoint, non-adjacent inclusive spans. Acks arrive
// nearly in order (the sender has a small in-flight window), and drops
// are whole segments, so the spans stay few.
type doneSet struct {
	mark  uint64 // every offset <= mark is done
	spans []span // all above mark+1
	count uint64 // offsets in spans
}

type span struct{ lo, hi uint64 }

// contains reports whether off is done.
func (d *doneSet) contains(off uint64) bool {
	if off <= d.mark {
		return true
	}
	i := sort.Search(len(d.spans), func(i int) bool { return d.spans[i].hi >= off })
	return i < len(d.spans) && d.spans[i].lo <= off
}

// add marks lo..hi done and returns how many of them were not done before.
func (d *doneSet) add(lo, hi uint64) uint64 {
	lo = max(lo, d.mark+1)
	if lo > hi {
		return 0
	}
	if lo == d.mark+1 && (len(d.spans) == 0 || d.spans[0].lo > hi+1) {
		d.mark = hi // the usual in-order ack
		return hi - lo + 1
	}
	// Spans touching or overlapping [lo, hi] merge with it.
	i := sort.Search(len(d.spans), func(i int) bool { return d.spans[i].hi+1 >= lo })
	j := i
	merged := span{lo, hi}
	var already uint64
	for ; j < len(d.spans) && d.spans[j].lo <= hi+1; j++ {
		s := d.spans[j]
		already += overlap(s, span{lo, hi})
		merged.lo = min(merged.lo, s.lo)
		merged.hi = max(merged.hi, s.hi)
		d.count -= s.hi - s.lo + 1
	}
	d.spans = append(d.spans[:i], append([]span{merged}, d.spans[j:]...)...)
	d.count += merged.hi - merged.lo + 1
	// Advance the mark over a span that now starts right after it.
	if d.spans[0].lo == d.mark+1 {
		d.mark = d.spans[0].hi
		d.count -= d.spans[0].hi - d.spans[0].lo + 1
		d.spans = d.spans[1:]
	}
	return hi - lo + 1 - already
}

// countIn returns how many offsets in lo..hi are done.
func (d *doneSet) countIn(lo, hi uint64) uint64 {
	if lo > hi {
		return 0
	}
	var n uint64
	if lo <= d.mark {
		n += min(hi, d.mark) - lo + 1
		lo = d.mark + 1
		if lo > hi {
			return n
		}
	}
	for _, s := range d.spans {
		n += overlap(s, span{lo, hi})
	}
	return n
}

func overlap(a, b span) uint64 {
	lo, hi := max(a.lo, b.lo), min(a.hi, b.hi)
	if lo > hi {
		return 0
	}
	return hi - lo + 1
}
