//go:build !cgo

package cgo

import (
	"net/netip"
	"time"
)

// This file is the package without cgo: the same API, whose constructors
// fail with errNoCgo, so no object ever exists and the methods are never
// reached.

type Device struct {
	Name string
	GUID uint64
}

type DeviceList struct{ Devices []*Device }

func GetDevices() (*DeviceList, error)                         { return nil, errNoCgo }
func (l *DeviceList) Close() error                             { return nil }
func (d *Device) Query() (DeviceAttr, error)                   { return DeviceAttr{}, errNoCgo }
func (d *Device) QueryPort(int) (PortAttr, error)              { return PortAttr{}, errNoCgo }
func (d *Device) AllocPD() (*PD, error)                        { return nil, errNoCgo }
func (d *Device) CreateCompChannel() (*CompChannel, error)     { return nil, errNoCgo }
func (d *Device) CreateCQ(int, *CompChannel, int) (*CQ, error) { return nil, errNoCgo }

type PD struct{}

func (p *PD) RegMR(uintptr, int, int) (*MR, error) { return nil, errNoCgo }
func (p *PD) Close() error                         { return nil }

type MR struct{}

func (m *MR) LKey() uint32 { return 0 }
func (m *MR) RKey() uint32 { return 0 }
func (m *MR) Close() error { return nil }

type CompChannel struct{}

func (c *CompChannel) Fd() int      { return -1 }
func (c *CompChannel) Close() error { return nil }

type CQ struct{}

func (q *CQ) Poll([]WC) (int, error)      { return 0, errNoCgo }
func (q *CQ) ReqNotify(bool) error        { return errNoCgo }
func (q *CQ) GetEvent(*CompChannel) error { return errNoCgo }
func (q *CQ) Ack()                        {}
func (q *CQ) Close() error                { return nil }

type EventChannel struct{}

func CreateEventChannel() (*EventChannel, error)   { return nil, errNoCgo }
func (c *EventChannel) Fd() int                    { return -1 }
func (c *EventChannel) GetEvent() (CMEvent, error) { return CMEvent{}, errNoCgo }
func (c *EventChannel) Close() error               { return nil }

type CMID struct{}

func CreateID(*EventChannel) (*CMID, error)                     { return nil, errNoCgo }
func (i *CMID) Bind(netip.AddrPort) error                       { return errNoCgo }
func (i *CMID) Listen(int) error                                { return errNoCgo }
func (i *CMID) ResolveAddr(netip.AddrPort, time.Duration) error { return errNoCgo }
func (i *CMID) ResolveRoute(time.Duration) error                { return errNoCgo }
func (i *CMID) OnDevice(*Device) bool                           { return false }
func (i *CMID) DeviceName() string                              { return "" }
func (i *CMID) LocalAddr() netip.AddrPort                       { return netip.AddrPort{} }
func (i *CMID) PeerAddr() netip.AddrPort                        { return netip.AddrPort{} }
func (i *CMID) CreateQP(*PD, *CQ, *CQ, QPCaps) error            { return errNoCgo }
func (i *CMID) QPNum() uint32                                   { return 0 }
func (i *CMID) Connect(ConnParam) error                         { return errNoCgo }
func (i *CMID) Accept(ConnParam) error                          { return errNoCgo }
func (i *CMID) Reject([]byte) error                             { return errNoCgo }
func (i *CMID) Disconnect() error                               { return errNoCgo }
func (i *CMID) Migrate(*EventChannel) error                     { return errNoCgo }
func (i *CMID) QPToError() error                                { return errNoCgo }
func (i *CMID) PostSend(uint64, int, int, uintptr, uint32, uint32, uint64, uint32, uint32) error {
	return errNoCgo
}
func (i *CMID) PostRecv(uint64, uintptr, uint32, uint32) error { return errNoCgo }
func (i *CMID) DestroyQP()                                     {}
func (i *CMID) Close() error                                   { return nil }
