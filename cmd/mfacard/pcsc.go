//go:build cgo && !nopcsc

package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/ebfe/scard"
)

// scardPCSC is the PC/SC service of pcsc-lite (pcscd).
type scardPCSC struct {
	ctx *scard.Context
}

// openPCSC establishes a PC/SC context with pcscd.
func openPCSC() (pcsc, error) {
	ctx, err := scard.EstablishContext()
	if err != nil {
		return nil, pcscError(err, "")
	}
	return &scardPCSC{ctx: ctx}, nil
}

func (p *scardPCSC) Close() error { return p.ctx.Release() }

func (p *scardPCSC) Readers() ([]readerStatus, error) {
	names, err := p.ctx.ListReaders()
	if err != nil {
		return nil, pcscError(err, "")
	}
	if len(names) == 0 {
		return nil, errNoReaders
	}
	states := make([]scard.ReaderState, len(names))
	for i, n := range names {
		states[i] = scard.ReaderState{Reader: n, CurrentState: scard.StateUnaware}
	}
	// A zero timeout returns the current state of every reader at once.
	if err := p.ctx.GetStatusChange(states, 0); err != nil && !errors.Is(err, scard.ErrTimeout) {
		return nil, pcscError(err, "")
	}
	out := make([]readerStatus, len(names))
	for i, s := range states {
		out[i] = readerStatus{Name: s.Reader, Present: s.EventState&scard.StatePresent != 0}
		if out[i].Present {
			out[i].ATR = slices.Clone(s.Atr)
		}
	}
	return out, nil
}

func (p *scardPCSC) Connect(reader string) (cardConn, error) {
	card, err := p.ctx.Connect(reader, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		return nil, pcscError(err, reader)
	}
	if err := card.BeginTransaction(); err != nil {
		card.Disconnect(scard.LeaveCard)
		return nil, pcscError(err, reader)
	}
	return &scardConn{card: card, reader: reader}, nil
}

type scardConn struct {
	card   *scard.Card
	reader string
}

func (c *scardConn) Transmit(apdu []byte) ([]byte, error) {
	resp, err := c.card.Transmit(apdu)
	if err != nil {
		return nil, pcscError(err, c.reader)
	}
	return resp, nil
}

func (c *scardConn) Close(reset bool) error {
	d := scard.LeaveCard
	if reset {
		d = scard.ResetCard
	}
	c.card.EndTransaction(scard.LeaveCard)
	return c.card.Disconnect(d)
}

// pcscError turns a PC/SC error into one of mfacard's sentences; reader
// is the reader concerned, "" for the service as a whole.
func pcscError(err error, reader string) error {
	var se scard.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se {
	case scard.ErrNoService, scard.ErrServiceStopped:
		return errNoService
	case scard.ErrNoReadersAvailable:
		return errNoReaders
	case scard.ErrNoSmartcard:
		return &noCardError{reader: reader}
	case scard.ErrUnknownReader, scard.ErrReaderUnavailable:
		return &unknownReaderError{reader: reader}
	case scard.ErrRemovedCard, scard.ErrNotTransacted, scard.ErrResetCard:
		return &cardError{reader: reader, what: "it was taken out or reset while mfacard used it; insert it again and retry"}
	case scard.ErrSharingViolation:
		return &cardError{reader: reader, what: "another program has it to itself; close that program and try again"}
	case scard.ErrUnpoweredCard, scard.ErrUnresponsiveCard, scard.ErrUnsupportedCard, scard.ErrInvalidAtr, scard.ErrProtoMismatch:
		return &cardError{reader: reader, what: "it does not answer; take it out, put it back in and try again"}
	}
	if reader == "" {
		return fmt.Errorf("the PC/SC service answered %q (0x%08X); pcscd's log may tell why", se.Error(), uint32(se))
	}
	return &cardError{reader: reader, what: fmt.Sprintf("PC/SC answered %q (0x%08X); pcscd's log may tell why", se.Error(), uint32(se))}
}
