package initiator

import (
	"errors"
	"fmt"

	"github.com/ferry-fabric/ferry/fabric"
)

var (
	// ErrVerifier is matched by a *VerifierError.
	ErrVerifier = errors.New("extension failed verification")
	// ErrRejected is matched by a *RejectedError.
	ErrRejected = errors.New("extension rejected")
)

// VerifierError is a load the kernel verifier refused. Log is the
// verifier's output as the target sent it (its end, if it was long).
type VerifierError struct {
	Name string
	Log  string
}

func (e *VerifierError) Error() string {
	return fmt.Sprintf("load %s: verifier: %s", e.Name, e.Log)
}

func (e *VerifierError) Is(target error) bool { return target == ErrVerifier }

// RejectedError is a load refused by the target's intake checks before
// the kernel saw it. Reason names the helper, map or property at fault.
type RejectedError struct {
	Name   string
	Reason string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("load %s: rejected: %s", e.Name, e.Reason)
}

func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// StatusOf returns the status of a failed request, or StatusOK if err did
// not come from the target.
func StatusOf(err error) fabric.Status {
	var se *fabric.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return fabric.StatusOK
}
