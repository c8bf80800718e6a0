package buffer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/edgeagent/agent/internal/atomicfile"
)

// state is the small file beside the segments.
type state struct {
	Version int               `json:"version"`
	Acked   uint64            `json:"acked"` // every offset <= Acked was delivered
	Next    uint64            `json:"next"`  // no offset below Next is ever handed out again
	Seqs    map[string]uint64 `json:"seqs"`  // highest seq appended per sensor
	// Done lists spans above Acked that need no delivery: out-of-order
	// acks, and offsets lost or dropped, so they are not reported again.
	Done [][2]uint64 `json:"done,omitempty"`
}

// maxStateSpans bounds the state file; spans beyond it are forgotten
// (their acked records would be sent again).
const maxStateSpans = 1000

func decodeState(b []byte) (state, error) {
	var st state
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return state{}, err
	}
	if st.Version != 1 {
		return state{}, fmt.Errorf("version %d", st.Version)
	}
	if st.Next == 0 || st.Acked >= st.Next {
		return state{}, fmt.Errorf("acked %d is not below next %d", st.Acked, st.Next)
	}
	return st, nil
}

func (l *Log) encodeState() []byte {
	st := state{Version: 1, Acked: l.done.mark, Next: l.next, Seqs: l.seqs}
	for _, sp := range l.done.spans[:min(len(l.done.spans), maxStateSpans)] {
		st.Done = append(st.Done, [2]uint64{sp.lo, sp.hi})
	}
	b, _ := json.Marshal(st)
	return append(b, '\n')
}

// writeState writes the state file. The state must be written before
// acked segments can be deleted, so on a full disk there would be no way
// out: a small reserve file, made when there is room, is given up for it.
// Called with syncMu held, or from Open.
func (l *Log) writeState(b []byte) error {
	path := filepath.Join(l.opt.Dir, stateName)
	err := atomicfile.WriteFile(path, b, 0o600)
	if err == nil || !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	if os.Remove(filepath.Join(l.opt.Dir, reserveName)) != nil {
		return err
	}
	l.needReserve = true
	return atomicfile.WriteFile(path, b, 0o600)
}

// keepReserve remakes the reserve file if it was used (or never made).
func (l *Log) keepReserve() {
	if !l.needReserve {
		return
	}
	if err := os.WriteFile(filepath.Join(l.opt.Dir, reserveName), make([]byte, reserveBytes), 0o600); err != nil {
		os.Remove(filepath.Join(l.opt.Dir, reserveName))
		return
	}
	l.needReserve = false
}

// found is a segment file seen at Open.
type found struct {
	first uint64
	name  string
}

// recover reads Dir at Open: state, segments, repairs.
func (l *Log) recover() {
	dir := l.opt.Dir
	rep := &l.report
	if err := os.MkdirAll(dir, 0o700); err != nil {
		l.startInMemory("create directory", err)
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		l.startInMemory("read directory", err)
		return
	}
	l.scanned = true

	st, stErr := l.readState()
	if stErr != nil {
		rep.StateError = stErr.Error()
		l.log.Warn("buffer: state file unusable; delivery restarts at the first record on disk (duplicates follow)",
			"file", filepath.Join(dir, stateName), "err", stErr)
	}

	var files []found
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) || !e.Type().IsRegular() {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil || len(name) != segNameLen || first == 0 {
			l.moveAside(name, 0, "name", "not <20-digit offset>.seg")
			continue
		}
		files = append(files, found{first, name})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].first < files[j].first })

	next := max(st.Next, 1)
	for i, fd := range files {
		limit := ^uint64(0)
		if i+1 < len(files) {
			limit = files[i+1].first - fd.first
		}
		next = max(next, fd.first)
		s := l.loadSegment(fd, limit)
		if s == nil {
			continue
		}
		l.segs = append(l.segs, s)
		l.diskBytes += s.size
		rep.Records += s.n
		next = max(next, s.end())
	}
	l.next = next

	// Offsets between the ack mark, the segments and next that have no
	// record any more are done: nothing can deliver them.
	if stErr == nil {
		l.done.mark = st.Acked
		for _, sp := range st.Done {
			if sp[0] <= sp[1] && sp[1] < next {
				l.done.add(sp[0], sp[1])
			}
		}
		for k, v := range st.Seqs {
			l.seqs[k] = max(l.seqs[k], v)
		}
	} else if len(l.segs) > 0 {
		l.done.mark = l.segs[0].first - 1
	} else {
		l.done.mark = next - 1
	}
	prev := l.done.mark + 1
	for _, s := range l.segs {
		if s.first > prev {
			rep.Lost += l.done.add(prev, s.first-1)
		}
		prev = max(prev, s.end())
	}
	if next > prev {
		rep.Lost += l.done.add(prev, next-1)
	}
	if rep.Lost > 0 {
		l.log.Warn("buffer: unacked records were lost before this start (torn or corrupt data, or held in memory when the agent stopped)", "dir", dir, "lost", rep.Lost)
	}

	// Wholly acked segments: the state file says so, they can go.
	for len(l.segs) > 0 && l.segs[0].last() <= l.done.mark {
		s := l.segs[0]
		l.remove(s)
		l.diskBytes -= s.size
		if err := os.Remove(filepath.Join(dir, s.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("buffer: cannot remove an acked segment", "segment", s.name, "err", err)
		}
		rep.Deleted++
	}
	rep.Segments = len(l.segs)

	// Writing the state both probes the directory and records next.
	if err := l.writeState(l.encodeState()); err != nil {
		l.startInMemory("write state", err)
	} else {
		_, err := os.Stat(filepath.Join(dir, reserveName))
		l.needReserve = err != nil
		l.keepReserve()
	}
	l.makeRoom(false, 0)
	l.log.Info("buffer: opened", "dir", dir, "segments", rep.Segments, "records", rep.Records,
		"unacked", l.depth(), "first_unacked", l.done.mark+1, "next", l.next, "memory", l.memory)
}

func (l *Log) readState() (state, error) {
	b, err := os.ReadFile(filepath.Join(l.opt.Dir, stateName))
	if errors.Is(err, os.ErrNotExist) {
		return state{Version: 1, Next: 1}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("read state: %w", err)
	}
	st, err := decodeState(b)
	if err != nil {
		return state{}, fmt.Errorf("parse %s: %w", stateName, err)
	}
	return st, nil
}

// startInMemory is the fallback when Dir cannot be used at Open.
func (l *Log) startInMemory(op string, err error) {
	l.report.Memory = true
	l.report.Error = fmt.Sprintf("%s: %v", op, err)
	l.diskFailed(op, err)
}

// loadSegment scans one file, keeps its valid prefix (at most limit
// records, since the next file's name says where its offsets begin) and
// moves the rest aside. It returns nil when nothing valid remains.
func (l *Log) loadSegment(fd found, limit uint64) *segment {
	path := filepath.Join(l.opt.Dir, fd.name)
	f, err := os.Open(path)
	if err != nil {
		l.moveAside(fd.name, 0, reasonIO, err.Error())
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		l.moveAside(fd.name, 0, reasonIO, err.Error())
		return nil
	}
	res := scanSegment(f, limit)
	var reason, detail string
	switch {
	case res.bad != nil:
		reason, detail = res.bad.reason, res.bad.detail
	case res.valid < fi.Size():
		reason, detail = reasonOverlap, fmt.Sprintf("records past offset %d belong to the next segment", fd.first+limit-1)
	}
	if fi.Size() == 0 {
		reason = "empty"
	}
	if reason != "" {
		l.moveAside(fd.name, res.valid, reason, detail)
	}
	if res.n == 0 {
		return nil
	}
	for k, v := range res.seqs {
		l.seqs[k] = max(l.seqs[k], v)
	}
	return &segment{first: fd.first, n: res.n, size: res.valid, name: fd.name, index: res.index}
}

// moveAside moves the bytes of a segment file from pos on to
// Dir/aside/<name>.<reason>.<time>, and truncates the file at pos (or
// removes it when pos is 0).
func (l *Log) moveAside(name string, pos int64, reason, detail string) {
	dir := l.opt.Dir
	path := filepath.Join(dir, name)
	a := Aside{Segment: name, Offset: pos, Reason: reason, Detail: detail}
	fail := func(op string, err error) {
		a.Detail += fmt.Sprintf("; %s: %v", op, err)
		l.log.Error("buffer: cannot move a damaged segment aside; ignoring its bad part", "file", path, "byte", pos, "reason", reason, "err", err)
		l.report.Aside = append(l.report.Aside, a)
	}
	fi, err := os.Stat(path)
	if err != nil {
		fail("stat", err)
		return
	}
	a.Bytes = fi.Size() - pos
	if fi.Size() == 0 {
		// A segment created just before a crash: nothing to keep.
		if err := os.Remove(path); err != nil {
			fail("remove", err)
			return
		}
		l.log.Info("buffer: removed an empty segment", "file", path)
		l.report.Aside = append(l.report.Aside, a)
		return
	}
	if err := os.MkdirAll(filepath.Join(dir, asideDir), 0o700); err != nil {
		fail("create aside directory", err)
		return
	}
	dst := l.asidePath(name, reason)
	if pos == 0 {
		if err := os.Rename(path, dst); err != nil {
			fail("rename", err)
			return
		}
	} else {
		if err := copyTail(path, dst, pos); err != nil {
			fail("copy tail", err)
			return
		}
		if err := truncateSync(path, pos); err != nil {
			fail("truncate", err)
			return
		}
	}
	syncDir(filepath.Join(dir, asideDir))
	syncDir(dir)
	a.Path = dst
	l.report.Aside = append(l.report.Aside, a)
	l.log.Warn("buffer: moved the damaged part of a segment aside", "file", path, "byte", pos, "bytes", a.Bytes,
		"reason", reason, "detail", detail, "to", dst)
}

func (l *Log) asidePath(name, reason string) string {
	base := filepath.Join(l.opt.Dir, asideDir, name+"."+reason+"."+l.now().UTC().Format("20060102T150405Z"))
	p := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = fmt.Sprintf("%s-%d", base, i)
	}
}

func copyTail(src, dst string, pos int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(in, pos, 1<<62)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// flush fsyncs the active segment, writes the state file and deletes
// segments that it shows to be wholly acked or dropped. final also
// deletes the active segment when wholly acked (at Close).
func (l *Log) flush(final bool) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if l.memory || l.opt.Dir == "" {
		l.mu.Unlock()
		return // the disk is retried from Append, and at Close
	}
	var f *os.File
	if (l.dataDirty || final) && l.active != nil {
		f = l.active.f
	}
	l.dataDirty = false
	dirDirty := l.dirDirty && l.opt.Sync != SyncNever
	l.dirDirty = false
	var snap []byte
	var del []*segment
	if l.stateDirty || final {
		if final {
			l.seal()
		}
		snap = l.encodeState()
		l.stateDirty = false
		del = l.pending
		l.pending = nil
		for len(l.segs) > 0 {
			s := l.segs[0]
			if s == l.active || s.last() > l.done.mark {
				break
			}
			l.remove(s)
			if s.isMem() {
				l.memBytes -= s.size
				continue
			}
			l.diskBytes -= s.size
			del = append(del, s)
		}
	}
	l.mu.Unlock()

	fail := func(op string, err error) {
		l.mu.Lock()
		l.diskFailed(op, err)
		l.pending = append(l.pending, del...)
		l.stateDirty = true
		l.mu.Unlock()
	}
	if f != nil && l.opt.Sync != SyncNever {
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			fail("fsync segment", err)
			return
		}
	}
	if dirDirty {
		if err := syncDir(l.opt.Dir); err != nil {
			fail("sync directory", err)
			return
		}
	}
	if snap == nil {
		return
	}
	if err := l.writeState(snap); err != nil {
		fail("write state", err)
		return
	}
	for _, s := range del {
		if err := os.Remove(filepath.Join(l.opt.Dir, s.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("buffer: cannot remove a finished segment", "segment", s.name, "err", err)
		}
	}
	l.keepReserve()
}

// retryDisk tries to go back to the disk: write the state, delete what is
// finished, and write the memory queue out as segments (its records keep
// their offsets). On failure the log stays in memory until the next try.
func (l *Log) retryDisk() {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.memory || !l.canRetry {
		return
	}
	l.lastRetry = l.now()
	dir := l.opt.Dir
	stillBad := func(op string, err error) {
		l.lastErr = fmt.Sprintf("%s: %v", op, err)
		l.log.Warn("buffer: the disk is still unusable; staying in memory", "dir", dir, "op", op, "err", err,
			"retry_in", l.opt.RetryEvery)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		stillBad("create directory", err)
		return
	}
	if !l.scanned {
		// Offsets and seqs handed out so far did not continue from
		// whatever the directory holds; mixing would reuse them.
		ents, err := os.ReadDir(dir)
		if err != nil {
			stillBad("read directory", err)
			return
		}
		for _, e := range ents {
			if e.Name() == stateName || strings.HasSuffix(e.Name(), segSuffix) {
				l.canRetry = false
				l.log.Error("buffer: the directory is readable now but holds a log this process could not see at start; staying in memory (restart the agent to drain it)", "dir", dir)
				return
			}
		}
		l.scanned = true
	}
	if err := l.writeState(l.encodeState()); err != nil {
		stillBad("write state", err)
		return
	}
	l.stateDirty = false
	for _, s := range l.pending {
		os.Remove(filepath.Join(dir, s.name))
	}
	l.pending = nil
	for len(l.segs) > 0 && !l.segs[0].isMem() && l.segs[0].last() <= l.done.mark {
		s := l.segs[0]
		l.remove(s)
		l.diskBytes -= s.size
		os.Remove(filepath.Join(dir, s.name))
	}
	l.releaseAcked()
	defer l.keepReserve()

	var moved uint64
	for _, s := range l.segs {
		if !s.isMem() {
			continue
		}
		if err := l.writeOut(s); err != nil {
			stillBad("write memory queue to "+segName(s.first), err)
			return
		}
		moved += s.n
	}
	if err := syncDir(dir); err != nil {
		stillBad("sync directory", err)
		return
	}
	l.memTail = nil
	l.memory = false
	l.log.Warn("buffer: the disk works again; back to disk", "dir", dir, "records_moved_from_memory", moved,
		"previous_error", l.lastErr)
	l.makeRoom(false, 0)
}

// writeOut turns a memory chunk into a segment file.
func (l *Log) writeOut(s *segment) error {
	name := segName(s.first)
	path := filepath.Join(l.opt.Dir, name)
	var buf []byte
	var index []int64
	for i, e := range s.mem {
		if i%indexEvery == 0 {
			index = append(index, int64(len(buf)))
		}
		buf = appendFrame(buf, e.Record)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	if s == l.memTail {
		l.memTail = nil
	}
	l.memBytes -= s.size
	l.diskBytes += int64(len(buf))
	s.name, s.mem, s.index, s.size = name, nil, index, int64(len(buf))
	if l.cur.seg == s {
		l.cur = cursor{} // positions were indexes; reseek
	}
	return nil
}

// Reject sets a record the broker refused aside, in
// Dir/aside/rejected.jsonl, and treats it as acked.
func (l *Log) Reject(off uint64, why string) {
	l.mu.Lock()
	if l.closed || off == 0 || off >= l.next || l.done.contains(off) {
		l.mu.Unlock()
		return
	}
	rec, ok := l.lookup(off)
	l.rejected++
	attrs := []any{"offset", off, "why", why}
	if ok {
		attrs = append(attrs, "topic", rec.Topic, "sensor", rec.Sensor, "seq", rec.Seq, "bytes", len(rec.Payload))
		if l.opt.Dir != "" {
			if err := l.writeRejected(off, rec, why); err != nil {
				attrs = append(attrs, "aside_err", err)
			}
		}
	}
	l.log.Warn("buffer: the broker refused a record; set aside", attrs...)
	advanced := l.markDone(off)
	l.mu.Unlock()
	if advanced {
		l.persistAcks()
	}
}

// lookup returns the record at off. It leaves the read cursor alone.
func (l *Log) lookup(off uint64) (Record, bool) {
	saved := l.cur
	l.cur = cursor{}
	c := l.seek(off)
	l.cur = saved
	if c.seg == nil || c.off != off {
		return Record{}, false
	}
	if c.seg.isMem() {
		return c.seg.mem[off-c.seg.first].Record, true
	}
	r, _, err := l.frameAt(c.seg, c.pos)
	if err != nil {
		return Record{}, false
	}
	r.Payload = append([]byte(nil), r.Payload...)
	return r, true
}

// writeRejected appends one line to the rejected file, keeping it and
// one previous file of at most rejectsMax bytes each.
func (l *Log) writeRejected(off uint64, r Record, why string) error {
	line := struct {
		Time          time.Time `json:"time"`
		Offset        uint64    `json:"offset"`
		Why           string    `json:"why"`
		Topic         string    `json:"topic"`
		Sensor        string    `json:"sensor,omitempty"`
		Seq           uint64    `json:"seq"`
		Payload       string    `json:"payload,omitempty"`
		PayloadBase64 []byte    `json:"payload_base64,omitempty"`
	}{Time: l.now().UTC(), Offset: off, Why: why, Topic: r.Topic, Sensor: r.Sensor, Seq: r.Seq}
	if utf8.Valid(r.Payload) {
		line.Payload = string(r.Payload)
	} else {
		line.PayloadBase64 = r.Payload
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Join(l.opt.Dir, asideDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, rejectsName)
	if fi, err := os.Stat(path); err == nil && fi.Size()+int64(len(b)) > rejectsMax {
		if err := os.Rename(path, path+".1"); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
