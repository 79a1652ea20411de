package main

import (
	"fmt"
)

// pcsc is the PC/SC service as mfacard uses it: pcsc.go implements it on
// pcsc-lite through github.com/ebfe/scard, stub.go refuses when built
// without cgo, and tests put virtual cards behind it. Errors are the
// sentences of errors.go.
type pcsc interface {
	// Readers lists every reader with whether a card is in it.
	Readers() ([]readerStatus, error)
	// Connect opens the card in reader inside a transaction, so that no
	// other program's APDUs come between mfacard's.
	Connect(reader string) (cardConn, error)
	Close() error
}

type readerStatus struct {
	Name    string
	Present bool   // a card is in the reader
	ATR     []byte // the card's answer to reset, when present
}

// cardConn is one connection to a card.
type cardConn interface {
	// Transmit sends a command APDU and returns the response APDU:
	// data, SW1, SW2.
	Transmit(apdu []byte) ([]byte, error)
	// Close ends the transaction and disconnects; reset also resets the
	// card, which ends a verified PIN's session.
	Close(reset bool) error
}

// session is a card connected for one subcommand.
type session struct {
	sys    pcsc
	conn   cardConn
	reader string
	piv    piv
}

// connect opens the card in the reader named, or, with name "", in the
// first reader that holds a card (the others are named on stderr).
func (t *tool) connect(name string) (*session, error) {
	sys, err := t.open()
	if err != nil {
		return nil, err
	}
	s, err := t.connectWith(sys, name)
	if err != nil {
		sys.Close()
		return nil, err
	}
	return s, nil
}

func (t *tool) connectWith(sys pcsc, name string) (*session, error) {
	rs, err := sys.Readers()
	if err != nil {
		return nil, err
	}
	var names, present []string
	for _, r := range rs {
		names = append(names, r.Name)
		if r.Present {
			present = append(present, r.Name)
		}
	}
	reader := name
	switch {
	case name != "":
		found := false
		for _, r := range rs {
			if r.Name == name {
				found = true
				if !r.Present {
					return nil, &noCardError{reader: name}
				}
			}
		}
		if !found {
			return nil, &unknownReaderError{reader: name, readers: names}
		}
	case len(present) == 0:
		return nil, &noCardError{readers: names}
	default:
		reader = present[0]
		if len(present) > 1 {
			fmt.Fprintf(t.stderr, "mfacard: cards are in %s; using %q (choose with --reader)\n", quoteList(present), reader)
		}
	}
	conn, err := sys.Connect(reader)
	if err != nil {
		return nil, err
	}
	return &session{sys: sys, conn: conn, reader: reader, piv: piv{t: conn}}, nil
}

// close disconnects, resetting the card when reset is set, and releases
// the PC/SC context.
func (s *session) close(reset bool) {
	s.conn.Close(reset)
	s.sys.Close()
}
