package main

import (
	"bytes"
	"testing"
)

// FuzzParseCertObject feeds the certificate object parser what a card
// might answer; it must not panic, and whatever it returns lies inside the
// input.
func FuzzParseCertObject(f *testing.F) {
	cert := bytes.Repeat([]byte{0x30}, 300)
	f.Add(tlv(0x53, append(append(tlv(0x70, cert), 0x71, 0x01, 0x00), 0xFE, 0x00)))
	f.Add(tlv(0x53, append(tlv(0x70, cert[:20]), 0x71, 0x01, 0x01)))
	f.Add([]byte{0x53, 0x00})
	f.Add([]byte{0x53, 0x82, 0xFF, 0xFF, 0x70})
	f.Add([]byte{0x53, 0x81})
	f.Fuzz(func(t *testing.T, obj []byte) {
		der, _, err := parseCertObject(obj)
		if err == nil && (len(der) == 0 || !bytes.Contains(obj, der)) {
			t.Fatalf("parseCertObject(% X) = % X without error", obj, der)
		}
	})
}

// FuzzExchange answers GET RESPONSE chaining with arbitrary status words;
// the loop must end.
func FuzzExchange(f *testing.F) {
	f.Add([]byte{0x61, 0x00, 0x61, 0x10, 0x90, 0x00})
	f.Add([]byte{0x6C, 0x05, 0x6C, 0x05, 0x90, 0x00})
	f.Add([]byte{0x61})
	f.Fuzz(func(t *testing.T, script []byte) {
		n := 0
		tr := transmitFunc(func([]byte) ([]byte, error) {
			n++
			if n > 10000 {
				t.Fatal("exchange does not end")
			}
			if len(script) < 2 {
				return script, nil
			}
			a := []byte{0x01, script[0], script[1]}
			script = script[2:]
			return a, nil
		})
		piv{t: tr}.exchange([]byte{0x00, 0xCB, 0x3F, 0xFF, 0x00})
	})
}

type transmitFunc func([]byte) ([]byte, error)

func (f transmitFunc) Transmit(b []byte) ([]byte, error) { return f(b) }
