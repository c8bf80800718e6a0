package buffer

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// SyncPolicy says when appended records are fsynced.
type SyncPolicy string

// Sync policies.
const (
	// SyncBatch fsyncs at most every BatchEvery after appends, and
	// persists the ack mark at the same moments.
	SyncBatch SyncPolicy = "batch"
	// SyncAlways fsyncs each append before Append returns and persists
	// the ack mark on each Ack that advances it.
	SyncAlways SyncPolicy = "always"
	// SyncNever leaves appends to the kernel. The state file is still
	// written (and synced) before a segment is deleted and at Close,
	// because offsets and seqs must not be reused.
	SyncNever SyncPolicy = "never"
)

// Defaults.
const (
	DefaultMaxBytes   = 64 << 20
	DefaultSegment    = 1 << 20
	DefaultBatchEvery = 100 * time.Millisecond
	DefaultRetryEvery = 30 * time.Second
)

// Options configure a Log.
type Options struct {
	Dir          string        // "" = memory only (bounded by MaxBytes)
	MaxBytes     int64         // 0 = 64 MiB; total of segments (and, separately, of the memory queue)
	SegmentBytes int64         // 0 = 1 MiB, or MaxBytes/8 if smaller; at most MaxBytes/2
	Sync         SyncPolicy    // "" = batch
	BatchEvery   time.Duration // 0 = 100 ms
	Logger       *slog.Logger  // nil discards

	// RetryEvery is how often, at most, a log that fell back to memory
	// tries the disk again (on Append). 0 = 30 s.
	RetryEvery time.Duration
	// Now is the clock for RetryEvery and for the names of files moved
	// aside. nil = time.Now.
	Now func() time.Time
}

// Record is one reading to deliver.
type Record struct {
	Topic   string
	Payload []byte
	Sensor  string
	Seq     uint64
}

// Entry is a stored record and its offset.
type Entry struct {
	Offset uint64
	Record
}

// Stats is a snapshot of the log's condition.
type Stats struct {
	Depth     int    // records not yet acked
	Bytes     int64  // bytes held: segments on disk plus the memory queue
	Dropped   uint64 // unacked records dropped to stay within MaxBytes or lost to a failed read, since Open
	Rejected  uint64 // records the broker refused, since Open
	Memory    bool   // appends go to memory: no Dir, or the disk failed
	LastError string // the last disk error, "" if none
}

// Report is what Open found on disk.
type Report struct {
	Dir          string
	Segments     int    // segment files kept
	Records      uint64 // valid records in them
	Unacked      int    // of those, not yet acked
	FirstUnacked uint64 // where a sender starts
	NextOffset   uint64 // the offset the next Append gets
	Deleted      int    // wholly acked segments removed
	Lost         uint64 // unacked offsets with no record any more (torn or corrupt data, memory of a previous run)
	Aside        []Aside
	StateError   string // the state file could not be used: delivery restarts at the first record on disk
	Memory       bool   // the directory is unusable: the log started in memory
	Error        string // why
}

// Aside is a file, or the tail of one, moved out of the way at Open.
type Aside struct {
	Segment string // file name in Dir
	Offset  int64  // byte offset where the bad data begins
	Bytes   int64  // bytes moved aside
	Reason  string // short, crc, length, body, overlap, io, empty, name
	Detail  string
	Path    string // where it went; "" if removed (empty) or the move failed
}

const (
	stateName    = "state.json"
	asideDir     = "aside"
	segSuffix    = ".seg"
	segNameLen   = 20 + len(segSuffix)
	rejectsName  = "rejected.jsonl"
	rejectsMax   = 512 << 10 // per file; one previous file is kept
	reserveName  = "reserve"
	reserveBytes = 16 << 10
)

// Log is a store-and-forward log of records. See the package comment.
type Log struct {
	opt         Options
	log         *slog.Logger
	now         func() time.Time
	notify      chan struct{}
	kick        chan struct{}
	stop        chan struct{}
	loopDone    chan struct{}
	syncMu      sync.Mutex // serialises fsyncs of the active segment, state writes and deletions
	mu          sync.Mutex // guards everything below
	closed      bool
	report      Report
	segs        []*segment // live segments and memory chunks, ascending by first offset
	active      *segment   // disk segment being appended to
	memTail     *segment   // memory chunk being appended to
	next        uint64     // offset of the next Append
	done        doneSet
	seqs        map[string]uint64
	diskBytes   int64
	memBytes    int64
	dropped     uint64
	rejected    uint64
	memory      bool // appends go to memory
	scanned     bool // Dir was read at Open, so offsets and seqs continue from it
	canRetry    bool
	lastRetry   time.Time
	lastErr     string
	dataDirty   bool       // appends not yet fsynced
	dirDirty    bool       // segment files created since the directory was synced
	stateDirty  bool       // the ack mark or the set of segments changed since the state was written
	pending     []*segment // removed from segs; their files go once the state is written
	cur         cursor
	rbuf        []byte // read buffer: bytes of rbufSeg from rbufPos
	rbufSeg     *segment
	rbufPos     int64
	wbuf        []byte
	needReserve bool // guarded by syncMu (or Open)
}

// segment is a segment file or, when mem is set, a chunk of the memory
// queue. Its records have the consecutive offsets first..first+n-1.
type segment struct {
	first uint64
	n     uint64
	size  int64    // bytes of whole frames (a memory chunk counts the same)
	name  string   // file name in Dir
	index []int64  // byte position of every indexEvery-th record
	mem   []Entry  // memory chunk
	f     *os.File // append handle while active
	rf    *os.File // read handle, opened when needed
	gone  bool     // removed from segs
}

func (s *segment) isMem() bool  { return s.name == "" }
func (s *segment) end() uint64  { return s.first + s.n } // one past the last offset
func (s *segment) last() uint64 { return s.first + s.n - 1 }

type cursor struct {
	seg *segment
	off uint64 // the next record in seg has this offset…
	pos int64  // …and starts here
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

func (o *Options) normalise() error {
	if o.MaxBytes < 0 || o.SegmentBytes < 0 || o.BatchEvery < 0 || o.RetryEvery < 0 {
		return fmt.Errorf("buffer: negative size or duration in options")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = min(DefaultSegment, o.MaxBytes/8)
	}
	if o.SegmentBytes > o.MaxBytes/2 {
		return fmt.Errorf("buffer: SegmentBytes %d is more than half of MaxBytes %d: dropping the oldest segment would leave nothing", o.SegmentBytes, o.MaxBytes)
	}
	if o.SegmentBytes < frameHeader {
		return fmt.Errorf("buffer: MaxBytes %d is too small", o.MaxBytes)
	}
	switch o.Sync {
	case "":
		o.Sync = SyncBatch
	case SyncBatch, SyncAlways, SyncNever:
	default:
		return fmt.Errorf("buffer: unknown sync policy %q (want batch, always or never)", o.Sync)
	}
	if o.BatchEvery == 0 {
		o.BatchEvery = DefaultBatchEvery
	}
	if o.RetryEvery == 0 {
		o.RetryEvery = DefaultRetryEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Open opens the log in o.Dir, creating it if needed, and recovers what
// is there (see Report). It fails only for invalid options: a directory
// that cannot be used makes a memory-only log, logged at Error and shown
// in Stats.
func Open(o Options) (*Log, error) {
	if err := o.normalise(); err != nil {
		return nil, err
	}
	l := &Log{
		opt:      o,
		log:      o.Logger,
		now:      o.Now,
		notify:   make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		next:     1,
		seqs:     map[string]uint64{},
	}
	l.report.Dir = o.Dir
	if o.Dir == "" {
		l.memory = true
		l.report.Memory = true
	} else {
		l.recover()
	}
	l.report.FirstUnacked = l.done.mark + 1
	l.report.NextOffset = l.next
	l.report.Unacked = l.depth()
	go l.loop()
	return l, nil
}

// Report returns what Open found.
func (l *Log) Report() Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.report
	r.Aside = append([]Aside(nil), r.Aside...)
	return r
}

// Notify returns a channel that receives after Appends (coalesced).
func (l *Log) Notify() <-chan struct{} { return l.notify }

// Append stores r and returns its offset. It fails only for a record that
// can never be stored (ErrInvalidRecord) or after Close: a full or failing
// disk moves the log to memory and the record is kept there.
func (l *Log) Append(r Record) (uint64, error) {
	if err := validate(r); err != nil {
		return 0, err
	}
	fs := frameSize(r)
	if int64(fs) > l.opt.MaxBytes {
		return 0, fmt.Errorf("%w: frame of %d bytes exceeds MaxBytes %d", ErrInvalidRecord, fs, l.opt.MaxBytes)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	retry := l.memory && l.canRetry && !l.now().Before(l.lastRetry.Add(l.opt.RetryEvery))
	l.mu.Unlock()
	if retry {
		l.retryDisk()
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	off := l.next
	stored := false
	if !l.memory {
		stored = l.appendDisk(off, r, fs)
	}
	if !stored {
		l.appendMem(off, r, fs)
	}
	l.next++
	l.seqs[r.Sensor] = max(l.seqs[r.Sensor], r.Seq)
	select {
	case l.notify <- struct{}{}:
	default:
	}
	return off, nil
}

// appendDisk writes the record to the active segment and reports whether
// it is stored there. On failure the log has switched to memory.
func (l *Log) appendDisk(off uint64, r Record, fs int) bool {
	l.makeRoom(false, int64(fs))
	if l.active != nil && l.active.size > 0 && l.active.size+int64(fs) > l.opt.SegmentBytes {
		l.seal()
	}
	if l.memory {
		return false // sealing failed
	}
	if l.active == nil {
		s := &segment{first: off, name: segName(off)}
		f, err := os.OpenFile(filepath.Join(l.opt.Dir, s.name), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			l.diskFailed("create segment", err)
			return false
		}
		s.f = f
		if l.opt.Sync == SyncAlways {
			if err := syncDir(l.opt.Dir); err != nil {
				f.Close()
				os.Remove(filepath.Join(l.opt.Dir, s.name))
				l.diskFailed("sync directory", err)
				return false
			}
		} else {
			l.dirDirty = true
		}
		l.active = s
		l.segs = append(l.segs, s)
	}
	s := l.active
	l.wbuf = appendFrame(l.wbuf[:0], r)
	if _, err := s.f.Write(l.wbuf); err != nil {
		// A partial frame would be trimmed at the next Open; trimming it
		// now keeps the file clean if the disk recovers.
		s.f.Truncate(s.size)
		l.diskFailed("append to "+s.name, err)
		return false
	}
	if s.n%indexEvery == 0 {
		s.index = append(s.index, s.size)
	}
	s.n++
	s.size += int64(len(l.wbuf))
	l.diskBytes += int64(len(l.wbuf))
	switch l.opt.Sync {
	case SyncAlways:
		if err := s.f.Sync(); err != nil {
			// The record was written; it stays where it is, and later
			// ones go to memory.
			l.diskFailed("fsync "+s.name, err)
		}
	case SyncBatch:
		l.dataDirty = true
		l.kickLoop()
	}
	return true
}

// appendMem adds the record to the memory queue.
func (l *Log) appendMem(off uint64, r Record, fs int) {
	l.makeRoom(true, int64(fs))
	if l.memTail == nil || (l.memTail.size > 0 && l.memTail.size+int64(fs) > l.opt.SegmentBytes) {
		l.memTail = &segment{first: off}
		l.segs = append(l.segs, l.memTail)
	}
	r.Payload = append([]byte(nil), r.Payload...)
	l.memTail.mem = append(l.memTail.mem, Entry{Offset: off, Record: r})
	l.memTail.n++
	l.memTail.size += int64(fs)
	l.memBytes += int64(fs)
}

// makeRoom drops the oldest disk segments (or memory chunks) until need
// more bytes fit within MaxBytes.
func (l *Log) makeRoom(mem bool, need int64) {
	for {
		used := l.diskBytes
		if mem {
			used = l.memBytes
		}
		if used+need <= l.opt.MaxBytes {
			return
		}
		var oldest *segment
		for _, s := range l.segs {
			if s.isMem() == mem {
				oldest = s
				break
			}
		}
		if oldest == nil {
			return
		}
		l.drop(oldest, "buffer full")
	}
}

// drop removes a whole segment or memory chunk, counting what was not yet
// delivered.
func (l *Log) drop(s *segment, why string) {
	if s == l.active {
		l.seal()
	}
	if s == l.memTail {
		l.memTail = nil
	}
	var unacked uint64
	if s.n > 0 {
		unacked = l.done.add(s.first, s.last())
	}
	l.dropped += unacked
	l.remove(s)
	if s.isMem() {
		l.memBytes -= s.size
		l.log.Warn("buffer: dropped the oldest records in memory: "+why, "first", s.first, "records", s.n, "unacked", unacked)
	} else {
		l.diskBytes -= s.size
		l.pending = append(l.pending, s)
		l.stateDirty = true
		l.kickLoop()
		l.log.Warn("buffer: dropped the oldest segment: "+why, "segment", s.name, "records", s.n, "unacked", unacked)
	}
	l.releaseAcked()
}

// remove takes s out of segs and closes its read handle.
func (l *Log) remove(s *segment) {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].first >= s.first })
	if i < len(l.segs) && l.segs[i] == s {
		l.segs = append(l.segs[:i], l.segs[i+1:]...)
	}
	s.gone = true
	if s.rf != nil {
		s.rf.Close()
		s.rf = nil
	}
	if l.rbufSeg == s {
		l.rbufSeg = nil
	}
}

// seal ends the active segment: later appends start a new one.
func (l *Log) seal() {
	s := l.active
	if s == nil {
		return
	}
	l.active = nil
	if l.opt.Sync != SyncNever || l.closed {
		if err := s.f.Sync(); err != nil {
			s.f.Close()
			s.f = nil
			l.diskFailed("fsync "+s.name, err)
			return
		}
	}
	if err := s.f.Close(); err != nil {
		s.f = nil
		l.diskFailed("close "+s.name, err)
		return
	}
	s.f = nil
}

// diskFailed switches appends to memory.
func (l *Log) diskFailed(op string, err error) {
	l.lastErr = fmt.Sprintf("%s: %v", op, err)
	if l.active != nil {
		s := l.active
		l.active = nil
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
	}
	if l.memory {
		return
	}
	l.memory = true
	l.canRetry = true
	l.lastRetry = l.now()
	l.log.Error("buffer: the disk failed; keeping readings in memory until it works again",
		"dir", l.opt.Dir, "op", op, "err", err, "retry_every", l.opt.RetryEvery, "max_bytes", l.opt.MaxBytes)
}

// kickLoop asks the sync loop to run.
func (l *Log) kickLoop() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Read returns up to max unacked entries with Offset >= from, in order.
// It does not wait: an empty result means nothing is pending (wait on
// Notify). Reading on from where the previous Read stopped continues
// from a cursor. Data that cannot be read any more (an I/O error, a file
// changed underneath) is logged, counted in Dropped and skipped.
func (l *Log) Read(from uint64, max int) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if max <= 0 {
		return nil, nil
	}
	c := l.seek(from)
	var out []Entry
	for c.seg != nil && len(out) < max {
		s := c.seg
		if c.off >= s.end() || s.gone {
			n := l.after(s)
			if n.seg == nil && !s.gone {
				break // caught up: stay at the end of s, which may grow
			}
			c = n
			continue
		}
		if s.isMem() {
			e := s.mem[c.off-s.first]
			if !l.done.contains(c.off) {
				e.Payload = append([]byte(nil), e.Payload...)
				out = append(out, e)
			}
			c.off++
			continue
		}
		r, size, err := l.frameAt(s, c.pos)
		if err != nil {
			l.readFailed(s, c, err)
			continue
		}
		if !l.done.contains(c.off) {
			r.Payload = append([]byte(nil), r.Payload...)
			out = append(out, Entry{Offset: c.off, Record: r})
		}
		c.off++
		c.pos += int64(size)
	}
	l.cur = c
	return out, nil
}

// seek finds the first stored offset >= from that is not below the ack mark.
func (l *Log) seek(from uint64) cursor {
	from = max(from, l.done.mark+1)
	if c := l.cur; c.seg != nil && !c.seg.gone && c.off == from {
		return c
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].end() > from })
	if i == len(l.segs) {
		return cursor{}
	}
	s := l.segs[i]
	if from <= s.first {
		return cursor{seg: s, off: s.first}
	}
	if s.isMem() {
		return cursor{seg: s, off: from}
	}
	k := (from - s.first) / indexEvery
	c := cursor{seg: s, off: s.first + k*indexEvery, pos: s.index[k]}
	for c.off < from {
		_, size, err := l.frameAt(s, c.pos)
		if err != nil {
			l.readFailed(s, c, err)
			return l.seek(from)
		}
		c.off++
		c.pos += int64(size)
	}
	return c
}

// after returns a cursor at the start of the segment after s.
func (l *Log) after(s *segment) cursor {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].first > s.first })
	if i == len(l.segs) {
		return cursor{}
	}
	if s.rf != nil {
		s.rf.Close() // reopened if read again
		s.rf = nil
		if l.rbufSeg == s {
			l.rbufSeg = nil
		}
	}
	return cursor{seg: l.segs[i], off: l.segs[i].first}
}

// frameAt decodes the frame at pos in a disk segment. The payload aliases
// the read buffer.
func (l *Log) frameAt(s *segment, pos int64) (Record, int, error) {
	if pos+frameHeader > s.size {
		return Record{}, 0, fmt.Errorf("frame at %d runs past the end (%d)", pos, s.size)
	}
	if err := l.fill(s, pos, frameHeader); err != nil {
		return Record{}, 0, err
	}
	n, err := checkHeader(l.rbuf[pos-l.rbufPos:])
	if err != nil {
		return Record{}, 0, err
	}
	if pos+frameHeader+int64(n) > s.size {
		return Record{}, 0, fmt.Errorf("frame at %d runs past the end (%d)", pos, s.size)
	}
	if err := l.fill(s, pos, frameHeader+n); err != nil {
		return Record{}, 0, err
	}
	return decodeFrame(l.rbuf[pos-l.rbufPos : pos-l.rbufPos+frameHeader+int64(n)])
}

// fill makes sure rbuf holds n bytes of s from pos.
func (l *Log) fill(s *segment, pos int64, n int) error {
	if l.rbufSeg == s && pos >= l.rbufPos && pos+int64(n) <= l.rbufPos+int64(len(l.rbuf)) {
		return nil
	}
	l.rbufSeg = nil
	if s.rf == nil {
		f, err := os.Open(filepath.Join(l.opt.Dir, s.name))
		if err != nil {
			return err
		}
		s.rf = f
	}
	want := min(max(int64(n), 64<<10), s.size-pos)
	if int64(cap(l.rbuf)) < want {
		l.rbuf = make([]byte, want)
	}
	l.rbuf = l.rbuf[:want]
	k, err := s.rf.ReadAt(l.rbuf, pos)
	if int64(k) < want {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	l.rbufSeg, l.rbufPos = s, pos
	return nil
}

// readFailed gives up on the rest of a segment that can no longer be
// read, and moves c to the next segment.
func (l *Log) readFailed(s *segment, c cursor, err error) {
	lost := l.done.add(c.off, s.last())
	l.dropped += lost
	l.lastErr = fmt.Sprintf("read %s at byte %d: %v", s.name, c.pos, err)
	l.log.Error("buffer: cannot read a segment any more; skipping the rest of it",
		"segment", s.name, "offset", c.off, "byte", c.pos, "unacked_lost", lost, "err", err)
	if s == l.active {
		l.seal()
	}
	if c.off == s.first {
		l.diskBytes -= s.size
		l.remove(s)
		l.pending = append(l.pending, s)
		l.stateDirty = true
	} else {
		l.diskBytes -= s.size - c.pos
		s.n = c.off - s.first
		s.size = c.pos
		s.index = s.index[:(s.n+indexEvery-1)/indexEvery]
	}
	l.releaseAcked()
}

// Ack marks off delivered. Acks may come in any order and more than once.
func (l *Log) Ack(off uint64) {
	l.mu.Lock()
	if l.closed || off == 0 || off >= l.next {
		l.mu.Unlock()
		return
	}
	advanced := l.markDone(off)
	l.mu.Unlock()
	if advanced {
		l.persistAcks()
	}
}

// markDone marks one offset done and reports whether the mark advanced.
func (l *Log) markDone(off uint64) bool {
	before := l.done.mark
	l.done.add(off, off)
	if l.done.mark == before {
		return false
	}
	l.stateDirty = true
	l.releaseAcked()
	return true
}

// persistAcks writes the ack mark when the policy says so.
func (l *Log) persistAcks() {
	switch l.opt.Sync {
	case SyncAlways:
		l.flush(false)
	case SyncBatch:
		l.kickLoop()
	case SyncNever:
		l.mu.Lock()
		deletable := len(l.segs) > 0 && !l.segs[0].isMem() && l.segs[0] != l.active && l.segs[0].last() <= l.done.mark
		l.mu.Unlock()
		if deletable {
			l.kickLoop()
		}
	}
}

// releaseAcked frees memory chunks that are wholly acked. Wholly acked
// segment files are deleted by flush, after the state file says so.
func (l *Log) releaseAcked() {
	for len(l.segs) > 0 {
		s := l.segs[0]
		if !s.isMem() || s.last() > l.done.mark {
			return
		}
		if s == l.memTail {
			l.memTail = nil
		}
		l.memBytes -= s.size
		l.remove(s)
	}
}

// FirstUnacked returns the lowest offset not yet acked (or the next
// offset, when everything is): where a sender starts after a reconnect.
func (l *Log) FirstUnacked() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done.mark + 1
}

// LastSeq returns the highest Seq ever appended for sensor, 0 if none.
func (l *Log) LastSeq(sensor string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seqs[sensor]
}

// Stats returns a snapshot of the log's condition.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{
		Depth:     l.depth(),
		Bytes:     l.diskBytes + l.memBytes,
		Dropped:   l.dropped,
		Rejected:  l.rejected,
		Memory:    l.memory,
		LastError: l.lastErr,
	}
}

// depth: every offset between the mark and next is either stored or done.
func (l *Log) depth() int {
	return int(l.next - 1 - l.done.mark - l.done.count)
}

// Close flushes and syncs what is on disk, persists the ack mark and the
// seqs, deletes wholly acked segments, and releases the files. A log in
// memory tries the disk once more; records it still cannot store are
// lost, and Close says so.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	retry := l.memory && l.canRetry
	l.mu.Unlock()
	close(l.stop)
	<-l.loopDone
	if retry {
		l.retryDisk()
	}
	l.flush(true)

	l.mu.Lock()
	defer l.mu.Unlock()
	var memRecords uint64
	for _, s := range l.segs {
		if s.isMem() {
			memRecords += s.n - l.done.countIn(s.first, s.last())
		}
		if s.f != nil {
			s.f.Close()
			s.f = nil
		}
		if s.rf != nil {
			s.rf.Close()
			s.rf = nil
		}
	}
	l.active = nil
	if memRecords > 0 && l.opt.Dir != "" {
		err := fmt.Errorf("buffer: close: %d unacked records held in memory are lost (%s)", memRecords, l.lastErr)
		l.log.Error(err.Error())
		return err
	}
	if l.memory && l.opt.Dir != "" && l.lastErr != "" {
		return fmt.Errorf("buffer: close: state not saved: %s", l.lastErr)
	}
	return nil
}

// loop runs flush: BatchEvery after a kick under SyncBatch, at once
// otherwise.
func (l *Log) loop() {
	defer close(l.loopDone)
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-l.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-l.kick:
			if l.opt.Sync != SyncBatch {
				l.flush(false)
			} else if fire == nil {
				timer = time.NewTimer(l.opt.BatchEvery)
				fire = timer.C
			}
		case <-fire:
			fire = nil
			l.flush(false)
		}
	}
}
