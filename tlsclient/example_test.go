package tlsclient_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgeagent/agent/tlsclient"
)

// The agent loads its credentials once, dials, and explains failures; a
// renewal later only swaps the Holder's credentials.
func Example() {
	files := tlsclient.Files{CA: "/etc/edgeagent/ca.crt", Cert: "/etc/edgeagent/device.crt", Key: "/etc/edgeagent/device.key"}
	creds, err := tlsclient.Load(files, time.Now())
	if errors.Is(err, tlsclient.ErrCredentials) {
		fmt.Println(err) // names the file and the fix; the CLI exits 2
		return
	}
	holder := tlsclient.NewHolder(creds)
	cfg := tlsclient.Config(holder, "broker.example", false)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := tlsclient.Dial(ctx, "192.0.2.10:8883", cfg)
	if err != nil {
		fmt.Println(tlsclient.Explain(err, "broker.example"))
		return
	}
	defer conn.Close()
	// ... MQTT over conn; under TLS 1.3 a refused client certificate is the
	// error of the first read (the CONNACK), which Explain also decodes.

	// Renewal: build and check the new credentials completely, then swap.
	if renewed, err := tlsclient.Load(files, time.Now()); err == nil {
		holder.Swap(renewed) // the next handshake presents the new certificate
	}
}
