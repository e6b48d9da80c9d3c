// Package proctest builds the Pulse services and runs processes for tests
// and development tools: free loopback ports; Proc, a supervised process
// that can be signalled, paused, killed and started again on the same
// address, its output kept in a file or in memory and every exit it did
// not cause noted; InProcess, a service's run called inside a test;
// RunRejects, a service's refusal of invalid settings; and RawConn, an HTTP connection written byte by byte.
// Nothing here is part of a service's image.
package proctest

import (
	"net"
	"strconv"
)

// FreePort returns a loopback TCP port that is free right now. Another
// process may take it before it is used: starters retry on a new port or
// fail clearly.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr returns "127.0.0.1:<port>" with a port that is free right now
// (see FreePort).
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}
