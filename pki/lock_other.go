//go:build !unix

package pki

import (
	"errors"
	"time"
)

// lockFile is unsupported here: the CA directory relies on flock.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	return nil, errors.New("the CA directory needs flock, which this operating system lacks; run the CA on Linux")
}
