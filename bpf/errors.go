package bpf

import (
	"errors"
	"strings"

	"github.com/cilium/ebpf"
)

var (
	// ErrRejected: the extension failed the intake checks (Inspect).
	// The error is a *RejectedError.
	ErrRejected = errors.New("extension rejected")

	// ErrVerifier: the kernel verifier refused the extension. The error is
	// a *VerifierError carrying the verifier's log.
	ErrVerifier = errors.New("extension failed verification")

	// ErrClosed: the engine or extension was closed.
	ErrClosed = errors.New("engine closed")

	// ErrInvalidInput: a RunInput outside the ABI limits, or a slot of
	// another engine.
	ErrInvalidInput = errors.New("invalid run input")

	// ErrBadOutput: the extension wrote a context the engine cannot trust,
	// such as a result length above the result cap.
	ErrBadOutput = errors.New("invalid run output")
)

// RejectedError says why intake refused an extension. Helper or Map names
// the culprit when there is one.
type RejectedError struct {
	Reason string // what is wrong, in words
	Helper string // the forbidden helper, e.g. "bpf_probe_read_kernel"
	Map    string // the forbidden map, e.g. ".bss"
}

func (e *RejectedError) Error() string {
	var b strings.Builder
	b.WriteString("reject extension: ")
	b.WriteString(e.Reason)
	if e.Helper != "" {
		b.WriteString(" (helper " + e.Helper + ")")
	}
	if e.Map != "" {
		b.WriteString(" (map " + e.Map + ")")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

func rejectf(reason string) *RejectedError { return &RejectedError{Reason: reason} }

// VerifierError carries the kernel verifier's log for an extension it
// refused. By default the log holds the verifier's error message and its
// statistics; Config.VerboseVerifier asks for the whole trace.
type VerifierError struct {
	Log string
	err error // cilium's *ebpf.VerifierError or the raw errno
}

func (e *VerifierError) Error() string {
	msg := e.Message()
	if msg == "" {
		return "verify extension: " + e.err.Error()
	}
	return "verify extension: " + msg
}

// Message returns the verifier's last meaningful line: usually the reason.
func (e *VerifierError) Message() string {
	lines := strings.Split(strings.TrimSpace(e.Log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "processed ") ||
			strings.HasPrefix(l, "verification time") ||
			strings.HasPrefix(l, "stack depth") {
			continue
		}
		return l
	}
	return ""
}

// Is makes errors.Is(err, ErrVerifier) true.
func (e *VerifierError) Is(target error) bool { return target == ErrVerifier }

// Unwrap gives access to the underlying cilium/ebpf error and errno.
func (e *VerifierError) Unwrap() error { return e.err }

// verifierError turns a load failure into a *VerifierError when the kernel
// refused the program, and returns nil for any other failure.
func verifierError(err error) *VerifierError {
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		return nil
	}
	return &VerifierError{Log: strings.Join(ve.Log, "\n"), err: err}
}
