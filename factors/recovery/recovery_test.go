package recovery

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/mfabridge/mfabridge/factors"
)

// memStore spends codes from a credential it holds, as internal/store
// does in a transaction.
type memStore struct {
	mu sync.Mutex
	c  factors.Credential
}

func (m *memStore) UseRecoveryCode(_ context.Context, _ string, h []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := 0; i+len(h) <= len(m.c.Secret); i += len(h) {
		if string(m.c.Secret[i:i+len(h)]) == string(h) {
			m.c.Secret = append(m.c.Secret[:i:i], m.c.Secret[i+len(h):]...)
			return true, nil
		}
	}
	return false, nil
}

func TestGenerate(t *testing.T) {
	shown, c, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if len(shown) != Count || Left(c) != Count || !c.Active || c.Method != factors.Recovery {
		t.Fatalf("%d codes shown, %d kept, %+v", len(shown), Left(c), c)
	}
	seen := map[string]bool{}
	for _, s := range shown {
		if !regexp.MustCompile(`^\d{5}-\d{5}$`).MatchString(s) || seen[s] {
			t.Errorf("code %q", s)
		}
		seen[s] = true
		if strings.Contains(string(c.Secret), strings.ReplaceAll(s, "-", "")) {
			t.Error("a code is kept as it is, not as its hash")
		}
	}
}

func TestEachCodeWorksOnce(t *testing.T) {
	shown, c, _ := Generate()
	st := &memStore{c: c}
	f := New(st)
	u := func() *factors.User {
		st.mu.Lock()
		defer st.mu.Unlock()
		cc := st.c
		cc.Secret = append([]byte(nil), cc.Secret...)
		return &factors.User{Name: "alice", Enrolment: &factors.Enrolment{Credentials: []factors.Credential{cc}}}
	}
	ctx := context.Background()
	for _, typed := range []string{shown[0], strings.ReplaceAll(shown[1], "-", ""), " " + strings.ReplaceAll(shown[2], "-", " ") + " "} {
		if err := f.Check(ctx, u(), typed); err != nil {
			t.Errorf("%q: %v", typed, err)
		}
	}
	if err := f.Check(ctx, u(), shown[0]); !errors.Is(err, factors.ErrWrongCode) {
		t.Errorf("a spent code: %v, want a wrong code", err)
	}
	// A login that read the set before the code was spent: replayed.
	stale := u()
	if err := f.Check(ctx, u(), shown[3]); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(ctx, stale, shown[3]); !errors.Is(err, factors.ErrReplayed) {
		t.Errorf("a code spent by another login: %v, want replayed", err)
	}
	for _, bad := range []string{"", "12345", "1234567890x", "abcde-fghij", "12345-678901", "123456"} {
		if err := f.Check(ctx, u(), bad); !errors.Is(err, factors.ErrWrongCode) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if Left(st.c) != Count-4 || !f.Enrolled(u()) || f.CodeLength(u()) != Digits {
		t.Errorf("left %d", Left(st.c))
	}
	for _, code := range shown[4:] {
		f.Check(ctx, u(), code)
	}
	if f.Enrolled(u()) || f.CodeLength(u()) != 0 {
		t.Error("enrolled with every code spent")
	}
}

// FuzzNormalise holds what a typed recovery code is read as: ten digits
// that were in it, in order, or nothing.
func FuzzNormalise(f *testing.F) {
	for _, s := range []string{"12345-67890", " 1234567890 ", "12345678901", "１２３４５-６７８９０", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		code, ok := normalise(s)
		if !ok {
			return
		}
		if len(code) != Digits || strings.Trim(code, "0123456789") != "" {
			t.Fatalf("%q read as %q", s, code)
		}
		if strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, s) != code {
			t.Fatalf("%q read as %q, not its digits", s, code)
		}
	})
}
