package buffer_test

import (
	"fmt"
	"log"
	"os"

	"github.com/edgeagent/agent/agent/buffer"
)

// A reading is appended with the sensor's next seq; a sender reads from
// the first unacked offset and acks what the broker took.
func Example() {
	dir, err := os.MkdirTemp("", "buffer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := buffer.Open(buffer.Options{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	for _, v := range []string{"21.5", "21.6", "21.4"} {
		seq := l.LastSeq("bme280") + 1
		if _, err := l.Append(buffer.Record{Topic: "edge/b1/bme280", Sensor: "bme280", Seq: seq, Payload: []byte(v)}); err != nil {
			log.Fatal(err)
		}
	}

	// The sender, after a (re)connect.
	entries, err := l.Read(l.FirstUnacked(), 64)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Printf("publish %d %s seq=%d %s\n", e.Offset, e.Topic, e.Seq, e.Payload)
		if e.Seq == 2 {
			l.Reject(e.Offset, "0x99 payload format invalid") // the broker refused it
			continue
		}
		l.Ack(e.Offset)
	}
	fmt.Println("first unacked:", l.FirstUnacked(), "depth:", l.Stats().Depth)
	// Output:
	// publish 1 edge/b1/bme280 seq=1 21.5
	// publish 2 edge/b1/bme280 seq=2 21.6
	// publish 3 edge/b1/bme280 seq=3 21.4
	// first unacked: 4 depth: 0
}
