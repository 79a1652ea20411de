package main

import (
	"errors"
	"fmt"
)

// What can go wrong with the reader or the card. Each message is a
// sentence for the person at the workstation, naming what to do; the
// sentinels and types let tests and callers tell them apart with
// errors.Is and errors.As.
var (
	errNoService = errors.New("the PC/SC service (pcscd) is not running: start it with systemctl start pcscd")
	errNoReaders = errors.New("no smartcard reader was found: connect the reader (pcscd needs a driver for it, such as libccid for USB readers) and try again")
	//lint:ignore U1000 used by stub.go, in builds without cgo
	errNoPCSC     = errors.New("mfacard was built without PC/SC support (CGO_ENABLED=0 or -tags nopcsc); build it with cgo and libpcsclite-dev")
	errNoPIV      = errors.New("the card has no PIV application: mfacard reads PIV smartcards (such as YubiKey PIV or government PIV/CAC cards), and this card is another kind")
	errNoCert     = errors.New("the card holds no certificate in slot 9A (PIV authentication): have the card's issuer load one onto it")
	errPINBlocked = errors.New("the card's PIN is blocked after too many wrong tries: unblock it with the PUK (yubico-piv-tool -a unblock-pin), or ask the card's issuer for a new PIN")
	errPINLength  = errors.New("a PIV PIN has 6 to 8 characters; nothing was sent to the card, so no try was used")
	errNoTerminal = errors.New("standard input is not a terminal, so mfacard cannot ask for the PIN: give it on standard input with --pin-stdin")
)

// noCardError is an empty reader, or no card in any reader.
type noCardError struct {
	reader  string   // "" when no reader holds a card
	readers []string // the readers seen, when reader is ""
}

func (e *noCardError) Error() string {
	if e.reader != "" {
		return fmt.Sprintf("no card is in the reader %q: insert the card and try again", e.reader)
	}
	return fmt.Sprintf("no card is in any reader (%s): insert the card and try again", quoteList(e.readers))
}

// unknownReaderError is a --reader name PC/SC does not know.
type unknownReaderError struct {
	reader  string
	readers []string
}

func (e *unknownReaderError) Error() string {
	if len(e.readers) == 0 {
		return fmt.Sprintf("there is no reader %q: mfacard readers lists the readers", e.reader)
	}
	return fmt.Sprintf("there is no reader %q: give --reader one of %s (mfacard readers lists them)", e.reader, quoteList(e.readers))
}

// cardError is a PC/SC failure that concerns one reader's card.
type cardError struct {
	reader string
	what   string // a sentence with what to do
}

func (e *cardError) Error() string {
	return fmt.Sprintf("the card in the reader %q: %s", e.reader, e.what)
}

// wrongPINError is a VERIFY the card refused.
type wrongPINError struct {
	left int // tries left; -1 when the card does not say
}

func (e *wrongPINError) Error() string {
	switch e.left {
	case -1:
		return "wrong PIN: try again, and mind that the card blocks the PIN after a few wrong tries"
	case 0:
		return "wrong PIN, and that was the last try: " + errPINBlocked.Error()
	case 1:
		return "wrong PIN: 1 try left before the card blocks the PIN"
	}
	return fmt.Sprintf("wrong PIN: %d tries left before the card blocks the PIN", e.left)
}

// Is makes the last wrong try a blocked PIN too.
func (e *wrongPINError) Is(target error) bool { return target == errPINBlocked && e.left == 0 }

// statusError is a status word the card answered that mfacard has no
// better sentence for.
type statusError struct {
	op string // "SELECT", "GET DATA 5FC105", …
	sw uint16
}

func (e *statusError) Error() string {
	return fmt.Sprintf("the card refused %s with status %04X (%s); if this is a PIV card, its issuer may tell why", e.op, e.sw, swMeaning(e.sw))
}

// swMeaning names common ISO 7816-4 status words.
func swMeaning(sw uint16) string {
	switch {
	case sw == 0x6700:
		return "wrong length"
	case sw == 0x6982:
		return "security status not satisfied"
	case sw == 0x6983:
		return "authentication method blocked"
	case sw == 0x6985:
		return "conditions of use not satisfied"
	case sw == 0x6A80:
		return "incorrect data"
	case sw == 0x6A81:
		return "function not supported"
	case sw == 0x6A82:
		return "not found"
	case sw == 0x6A86:
		return "incorrect P1 P2"
	case sw == 0x6A88:
		return "referenced data not found"
	case sw == 0x6D00:
		return "instruction not supported"
	case sw == 0x6E00:
		return "class not supported"
	case sw&0xFF00 == 0x6F00:
		return "no precise diagnosis"
	}
	return "unknown status"
}

func quoteList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", n)
	}
	return s
}
