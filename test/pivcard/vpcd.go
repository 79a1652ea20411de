package pivcard

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// DefaultPort is vpcd's TCP port for the first reader slot ("Virtual PCD
// 00 00"); the second slot listens one above. A reader file's DEVICENAME
// /dev/null:PORT chooses another.
const DefaultPort = 35963

// Slot is the card inserted into one vpcd reader slot: a TCP connection to
// vpcd. pcscd sees the card arrive when the connection is made and leave
// when it closes (it polls: about 0.4 s either way).
type Slot struct {
	conn net.Conn
	done chan struct{}
	once sync.Once
	err  error
}

// Insert connects to vpcd at addr (127.0.0.1:PORT of one slot), retrying
// while nothing listens there until ctx ends, and answers vpcd until
// Remove or until vpcd closes the connection (pcscd stopped).
func (c *Card) Insert(ctx context.Context, addr string) (*Slot, error) {
	conn, err := Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	s := &Slot{conn: conn, done: make(chan struct{})}
	go func() {
		s.err = c.Serve(conn)
		close(s.done)
	}()
	return s, nil
}

// Dial connects to vpcd at addr, retrying every 50 ms while the port
// refuses, until ctx ends. vpcd listens only while pcscd runs with its
// reader file. Whoever connects is the card in that slot, so nothing but
// a card may dial the port.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pivcard: connect to vpcd at %s: %w", addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Remove takes the card out: it closes the connection and waits for the
// card's goroutine to end.
func (s *Slot) Remove() error {
	s.once.Do(func() { s.conn.Close() })
	<-s.done
	if errors.Is(s.err, net.ErrClosed) {
		return nil
	}
	return s.err
}

// Done is closed when the card stopped answering: Remove, or vpcd closed
// the connection.
func (s *Slot) Done() <-chan struct{} { return s.done }

// Serve answers vpcd's messages on conn until it closes (nil) or fails.
// Every message either way is a 2-byte big-endian length and a payload. A
// 1-byte payload from vpcd is a control code: 00 power off, 01 power on,
// 02 reset (each drops the volatile state), 04 get ATR (the only one
// answered); a longer one is a command APDU, answered with the response
// APDU.
func (c *Card) Serve(conn net.Conn) error {
	hdr := make([]byte, 2)
	for {
		if _, err := io.ReadFull(conn, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		quickAck(conn)
		msg := make([]byte, binary.BigEndian.Uint16(hdr))
		if _, err := io.ReadFull(conn, msg); err != nil {
			return err
		}
		quickAck(conn)
		var out []byte
		switch {
		case len(msg) == 1 && msg[0] == 0x04:
			out = ATR
		case len(msg) == 1:
			c.Reset()
			continue
		case len(msg) == 0:
			continue
		default:
			out = c.Process(msg)
		}
		// One write for length and payload: vpcd reads the length first,
		// and a split write would meet its delayed ACK.
		frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(out)), uint16(len(out)))
		if _, err := conn.Write(append(frame, out...)); err != nil {
			return err
		}
	}
}
