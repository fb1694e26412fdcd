package cgo

import (
	"errors"
	"testing"

	"github.com/ferry-fabric/ferry/fabric"
)

// TestNoDevice runs where there is no RDMA device or no cgo (the host):
// every way in fails with ErrNotSupported and leaves nothing open.
func TestNoDevice(t *testing.T) {
	l, err := GetDevices()
	if err == nil {
		l.Close()
		t.Skip("this machine has an RDMA device")
	}
	if !errors.Is(err, fabric.ErrNotSupported) {
		t.Fatalf("GetDevices: %v, want ErrNotSupported", err)
	}
	if ch, err := CreateEventChannel(); err == nil {
		ch.Close()
	} else {
		t.Logf("CreateEventChannel: %v", err)
	}
	if c := Open(); !c.IsZero() {
		t.Fatalf("open objects: %s", c)
	}
}

func TestWCStatusString(t *testing.T) {
	if s := WCRemAccessErr.String(); s != "remote access error" {
		t.Fatal(s)
	}
	if s := WCStatus(99).String(); s != "status(99)" {
		t.Fatal(s)
	}
}
