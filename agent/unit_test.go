package agent

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	lo := func() float64 { return 0 }
	hi := func() float64 { return 1 }
	if d := backoff(0, hi); d != 0 {
		t.Errorf("first attempt waits %v, want at once", d)
	}
	prevHi := time.Duration(0)
	for n := 1; n < 40; n++ {
		l, h := backoff(n, lo), backoff(n, hi)
		if l > h || h > backoffCap || l < h/2 {
			t.Errorf("attempt %d: range [%v, %v], want jitter in the upper half, cap %v", n, l, h, backoffCap)
		}
		if h < prevHi {
			t.Errorf("attempt %d: max %v below previous %v", n, h, prevHi)
		}
		prevHi = h
	}
	if backoff(1, hi) != backoffBase || backoff(39, hi) != backoffCap {
		t.Errorf("backoff(1)=%v backoff(39)=%v", backoff(1, hi), backoff(39, hi))
	}
}

func TestDedup(t *testing.T) {
	d := newDedup(3)
	for i := range 4 {
		d.put(fmt.Sprint(i), []byte{byte(i)})
	}
	if _, ok := d.get("0"); ok {
		t.Error("oldest id still remembered past capacity")
	}
	for _, id := range []string{"1", "2", "3"} {
		if r, ok := d.get(id); !ok || r[0] != id[0]-'0' {
			t.Errorf("get(%s) = %v, %v", id, r, ok)
		}
	}
	d.put("3", []byte("other"))
	if r, _ := d.get("3"); r[0] != 3 {
		t.Error("put replaced the first reply of an id")
	}
}

func TestQueueOrderAndBusy(t *testing.T) {
	q := newCmdQueue(2)
	for i := range 9 {
		ok := q.push(item{payload: fmt.Appendf(nil, `{"id":"c%d"}`, i)})
		if ok != (i < 8) {
			t.Errorf("push %d = %v; want drops only past 4×max", i, ok)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for i := range 8 {
		it, ok := q.pop(ctx)
		if !ok {
			t.Fatalf("pop %d: empty", i)
		}
		want := fmt.Sprintf("c%d", i)
		switch {
		case i < 2 && (it.busy || string(it.payload) != fmt.Sprintf(`{"id":%q}`, want)):
			t.Errorf("pop %d = %+v, want the command in order", i, it)
		case i >= 2 && (!it.busy || it.payload != nil || it.busyID == nil || *it.busyID != want):
			t.Errorf("pop %d = %+v, want a busy answer for %s without payload", i, it, want)
		}
	}
	cancel()
	if _, ok := q.pop(ctx); ok {
		t.Error("pop on an empty queue with a cancelled ctx returned an item")
	}
}

func TestValidTopicName(t *testing.T) {
	for s, want := range map[string]bool{"edge/dev1/reply/x": true, "": false, "a/+/b": false, "a/#": false, "a\x00": false} {
		if validTopicName(s) != want {
			t.Errorf("validTopicName(%q) != %v", s, want)
		}
	}
}

func TestRefusalsRateLimit(t *testing.T) {
	var r refusals
	t0 := time.Unix(0, 0)
	if log, n := r.note("a", t0); !log || n != 1 {
		t.Errorf("first refusal: log=%v n=%d", log, n)
	}
	if log, _ := r.note("a", t0.Add(time.Second)); log {
		t.Error("second refusal within a minute logged")
	}
	if log, _ := r.note("b", t0.Add(time.Second)); !log {
		t.Error("first refusal on another topic not logged")
	}
	if log, n := r.note("a", t0.Add(61*time.Second)); !log || n != 2 {
		t.Errorf("after a minute: log=%v n=%d, want the count of 2", log, n)
	}
}

func TestFlapBackoff(t *testing.T) {
	var f flapBackoff
	t0 := time.Unix(1000, 0)
	f.up(t0)
	f.down(t0.Add(time.Second)) // dropped at once: count on
	f.up(t0.Add(2 * time.Second))
	f.down(t0.Add(3 * time.Second))
	if f.count() != 2 {
		t.Errorf("after two flaps count = %d, want 2", f.count())
	}
	f.up(t0.Add(4 * time.Second))
	f.down(t0.Add(4*time.Second + stableLink)) // a stable link resets it
	if f.count() != 0 {
		t.Errorf("after a stable link count = %d, want 0", f.count())
	}
}
