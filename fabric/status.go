package fabric

import "fmt"

// Status is the outcome code every response carries.
type Status uint16

const (
	StatusOK Status = iota
	// StatusBadRequest: the message could not be decoded.
	StatusBadRequest
	// StatusUnknownOp: the opcode is not one this target knows.
	StatusUnknownOp
	// StatusVersion: the protocol version is not supported.
	StatusVersion
	// StatusNoSession: a request came before hello.
	StatusNoSession
	// StatusNoNamespace: the namespace id is not served.
	StatusNoNamespace
	// StatusOutOfRange: blocks past the end of the namespace.
	StatusOutOfRange
	// StatusUnaligned: a length or offset not a multiple of the block size.
	StatusUnaligned
	// StatusTooLarge: more blocks, arguments or bytes than the target allows.
	StatusTooLarge
	// StatusVerifier: the kernel verifier refused the extension; the
	// message carries its log.
	StatusVerifier
	// StatusRejected: the extension failed Ferry's intake checks (forbidden
	// helper, foreign map, wrong program count, not an ELF).
	StatusRejected
	// StatusNoExtension: the extension handle is not loaded.
	StatusNoExtension
	// StatusExtension: the extension ran and returned an error code.
	StatusExtension
	// StatusResultTooSmall: the result did not fit the buffer offered.
	StatusResultTooSmall
	// StatusIO: the storage device failed the I/O.
	StatusIO
	// StatusRegion: the peer's memory region was refused by the transport.
	StatusRegion
	// StatusInternal: anything else; the message says what.
	StatusInternal
	// StatusShuttingDown: the target is closing and takes no new work.
	StatusShuttingDown
)

var statusNames = [...]string{
	StatusOK:             "ok",
	StatusBadRequest:     "bad request",
	StatusUnknownOp:      "unknown op",
	StatusVersion:        "unsupported version",
	StatusNoSession:      "no session",
	StatusNoNamespace:    "no such namespace",
	StatusOutOfRange:     "out of range",
	StatusUnaligned:      "unaligned",
	StatusTooLarge:       "too large",
	StatusVerifier:       "verifier rejected extension",
	StatusRejected:       "extension rejected",
	StatusNoExtension:    "no such extension",
	StatusExtension:      "extension failed",
	StatusResultTooSmall: "result buffer too small",
	StatusIO:             "i/o error",
	StatusRegion:         "memory region refused",
	StatusInternal:       "internal error",
	StatusShuttingDown:   "shutting down",
}

func (s Status) String() string {
	if int(s) < len(statusNames) && statusNames[s] != "" {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint16(s))
}

// StatusError is a failed response as an error. The initiator returns it
// (wrapped in typed errors where it has more to say).
type StatusError struct {
	Op      Op
	Status  Status
	Message string
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: %s", e.Op, e.Status)
	}
	return fmt.Sprintf("%s: %s: %s", e.Op, e.Status, e.Message)
}

// Is makes errors.Is(err, &StatusError{Status: s}) match on status alone.
func (e *StatusError) Is(target error) bool {
	t, ok := target.(*StatusError)
	return ok && t.Status == e.Status && (t.Op == 0 || t.Op == e.Op)
}
