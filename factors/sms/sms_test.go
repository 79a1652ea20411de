package sms

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/state"
)

type sent struct{ to, body string }

type messenger struct {
	mu   sync.Mutex
	sent []sent
	err  error
}

func (m *messenger) SendSMS(_ context.Context, to, body string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.sent = append(m.sent, sent{to, body})
	return nil
}

func (m *messenger) all() []sent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sent(nil), m.sent...)
}

func newSMS(t *testing.T, perHour int) (*SMS, *messenger) {
	t.Helper()
	kv := state.NewMemory(state.MemoryOptions{Sweep: -1})
	t.Cleanup(func() { kv.Close() })
	m := &messenger{}
	return New(Options{
		Messenger:   m,
		Codes:       &factors.SentCodes{KV: kv, Length: 6, TTL: 5 * time.Minute},
		Limits:      &factors.SendLimits{KV: kv, PerUserHour: perHour, GlobalMinute: 30},
		Message:     "Your {issuer} code is {code}. Never share it.",
		Issuer:      "Example NHS Trust",
		CountryCode: "44",
	}), m
}

var codeRE = regexp.MustCompile(`^Your Example NHS Trust code is (\d{6})\. Never share it\.$`)

func TestStartSendsACodeThatChecksOnce(t *testing.T) {
	s, m := newSMS(t, 5)
	u := &factors.User{Name: "alice", Mobile: "07700 900123"}
	if !s.Enrolled(u) || s.Label(u) != "a text message to ******0123" || s.CodeLength(u) != 6 || s.Method() != factors.SMS {
		t.Fatalf("Enrolled %t, Label %q, CodeLength %d", s.Enrolled(u), s.Label(u), s.CodeLength(u))
	}
	p, err := s.Start(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if p.Text != "A text message with a code was sent to ******0123." {
		t.Errorf("prompt %q", p.Text)
	}
	msgs := m.all()
	if len(msgs) != 1 || msgs[0].to != "+447700900123" {
		t.Fatalf("sent %+v, want one message to +447700900123", msgs)
	}
	mm := codeRE.FindStringSubmatch(msgs[0].body)
	if mm == nil {
		t.Fatalf("body %q", msgs[0].body)
	}
	if strings.Contains(p.Text, mm[1]) {
		t.Error("the prompt shows the code")
	}
	if err := s.Check(context.Background(), u, "000000"); err == nil && mm[1] != "000000" {
		t.Fatal("a wrong code passed")
	}
	if err := s.Check(context.Background(), u, mm[1]); err != nil {
		t.Fatalf("the code sent: %v", err)
	}
	if err := s.Check(context.Background(), u, mm[1]); err == nil {
		t.Fatal("the code sent passed twice")
	}
}

func TestStartRefusals(t *testing.T) {
	t.Run("no usable number", func(t *testing.T) {
		for _, mobile := range []string{"", "call me", "7700 900123"} {
			s, m := newSMS(t, 5)
			u := &factors.User{Name: "alice", Mobile: mobile, Voice: "+447700900123"}
			if s.Enrolled(u) {
				t.Errorf("%q: enrolled", mobile)
			}
			if _, err := s.Start(context.Background(), u); !errors.Is(err, factors.ErrNotEnrolled) {
				t.Errorf("%q: %v, want ErrNotEnrolled", mobile, err)
			}
			if len(m.all()) != 0 {
				t.Errorf("%q: a message was sent", mobile)
			}
		}
	})
	t.Run("limit", func(t *testing.T) {
		s, m := newSMS(t, 2)
		u := &factors.User{Name: "alice", Mobile: "+447700900123"}
		for range 2 {
			if _, err := s.Start(context.Background(), u); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Start(context.Background(), u); !errors.Is(err, factors.ErrRateLimited) {
			t.Fatalf("third: %v, want ErrRateLimited", err)
		}
		if n := len(m.all()); n != 2 {
			t.Fatalf("%d messages, want 2", n)
		}
	})
	t.Run("send fails", func(t *testing.T) {
		s, m := newSMS(t, 5)
		m.err = &factors.SendError{Method: factors.SMS, Code: 21211, Status: 400, Err: errors.New("Invalid 'To' Phone Number")}
		_, err := s.Start(context.Background(), &factors.User{Name: "alice", Mobile: "+447700900123"})
		var se *factors.SendError
		if !errors.As(err, &se) || se.Code != 21211 {
			t.Fatalf("%v, want the SendError", err)
		}
	})
}

// A new message replaces the code of the one before.
func TestNewMessageReplacesTheCode(t *testing.T) {
	s, m := newSMS(t, 5)
	u := &factors.User{Name: "alice", Mobile: "+447700900123"}
	s.Start(context.Background(), u)
	s.Start(context.Background(), u)
	msgs := m.all()
	first, second := codeRE.FindStringSubmatch(msgs[0].body)[1], codeRE.FindStringSubmatch(msgs[1].body)[1]
	if first == second {
		t.Skip("the two codes happen to be equal")
	}
	if err := s.Check(context.Background(), u, first); !errors.Is(err, factors.ErrWrongCode) {
		t.Errorf("the first code after a second message: %v, want ErrWrongCode", err)
	}
	if err := s.Check(context.Background(), u, second); err != nil {
		t.Errorf("the second code: %v", err)
	}
}
