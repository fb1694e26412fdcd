package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/ferry-fabric/ferry/fabric"
	"github.com/ferry-fabric/ferry/fabric/tcp"
	"github.com/ferry-fabric/ferry/rdma"
)

// Logger returns a text logger on stderr at the named level.
func Logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// Transport opens the provider for an address of the form scheme://host:port
// and returns it with the host:port part.
func Transport(addr string, log *slog.Logger) (fabric.Transport, string, error) {
	scheme, hostport, ok := strings.Cut(addr, "://")
	if !ok {
		return nil, "", fmt.Errorf("address %q needs a scheme, as in tcp://127.0.0.1:7420", addr)
	}
	switch scheme {
	case "tcp":
		return tcp.New(tcp.Options{Logger: log}), hostport, nil
	case "rdma":
		t, err := rdma.New(rdma.Options{Logger: log})
		if err != nil {
			return nil, "", fmt.Errorf("address %q: %w", addr, err)
		}
		return t, hostport, nil
	}
	return nil, "", fmt.Errorf("address %q: unknown transport %q", addr, scheme)
}

// DefaultAddr is where ferry-target listens and the other tools connect
// unless told otherwise.
const DefaultAddr = "tcp://127.0.0.1:7420"
