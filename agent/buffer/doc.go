// Package buffer is the agent's store-and-forward log for telemetry: a
// board that loses its broker for minutes or hours keeps every reading on
// disk and delivers it, in order, once the broker is back.
//
// # Concept
//
// Every reading is appended to a log and gets an offset: 1, 2, 3…, never
// reused, not even across restarts. A sender reads from the first
// unacked offset, publishes, and acks each offset when the broker has
// it. Acks may come out of order and more than once; the log keeps the
// contiguous acked prefix (the ack mark) and deletes segment files that
// lie wholly below it. A record the broker refuses (reason code >= 0x80)
// is rejected: written to aside/rejected.jsonl and treated as acked, so
// one bad record cannot block the queue. The log also remembers the
// highest Seq appended per sensor, so a restarted agent continues each
// sensor's sequence with no reuse and no gap, even when every record was
// delivered and deleted.
//
// # Format
//
// Dir holds segment files named <first offset, 20 digits>.seg, whose
// records have consecutive offsets from the one in the name, and
// state.json (ack mark, next offset, last seq per sensor), replaced
// atomically. A record is framed as
//
//	[u32 length of body][u32 CRC-32C (Castagnoli) of body][body]     little-endian
//	body = [u8 version=1][uvarint seq][uvarint len][sensor][uvarint len][topic][payload]
//
// Dir/aside/ receives damaged data and rejected records; Dir/reserve is
// a small file given up so the state can still be written on a full disk.
//
// # Guarantees
//
//   - A record is on disk when Append returns (SyncAlways), within
//     BatchEvery (SyncBatch, the default) or when the kernel writes it
//     (SyncNever). A killed process loses nothing it appended under any
//     policy; a power cut may lose the last BatchEvery under SyncBatch.
//   - Open scans every segment. A torn or corrupt frame (bad length, CRC
//     mismatch, short read) ends the file's valid prefix: the prefix is
//     kept, the rest is moved to aside/<name>.<reason>.<time> and
//     reported (Report, and a Warn naming the file and byte offset).
//     Later segments still count. What is delivered is the records up to
//     some point, consecutive: never a gap followed by more records from
//     the same file.
//   - The ack mark is persisted per the sync policy; after a crash the
//     newest acks may be forgotten and those records are sent again.
//     Duplicates are possible, loss of unacked records is not (except by
//     the bound below).
//   - Bytes on disk stay within MaxBytes: when an append would pass it,
//     the oldest whole segment is dropped, its unacked records counted in
//     Stats.Dropped and logged. Append never blocks on a full buffer.
//   - A disk that fails (ENOSPC, EROFS, EIO…) or a directory that cannot
//     be used does not fail Append: the log logs at Error, sets
//     Stats.Memory and Stats.LastError, and keeps appending to a memory
//     queue bounded by MaxBytes. Records already on disk are still read
//     first. Every RetryEvery (30 s) an Append tries the disk again; when
//     it works, the memory queue is written out as segments and the log
//     says it is back. Records only in memory are lost if the agent stops
//     before that, and Close says how many.
//
// # Use
//
// One goroutine appends, one reads and acks, anyone may call Stats:
//
//	l, err := buffer.Open(buffer.Options{Dir: "/var/lib/edgeagent/buffer", Logger: log})
//	...
//	off, err := l.Append(buffer.Record{Topic: t, Payload: p, Sensor: s, Seq: l.LastSeq(s) + 1})
//
//	// sender, after each (re)connect:
//	next := l.FirstUnacked()
//	for {
//		entries, err := l.Read(next, 64)
//		if len(entries) == 0 { <-l.Notify(); continue } // or ctx.Done()
//		for _, e := range entries {
//			publish e; on PUBACK: l.Ack(e.Offset), or l.Reject(e.Offset, reason) when reason >= 0x80
//			next = e.Offset + 1
//		}
//	}
package buffer
