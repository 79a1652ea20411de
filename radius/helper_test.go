package radius

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/state"
)

// Test users of fakeDirectory. Every user's password is rightPassword.
const (
	rightPassword = "right"
	userSlow      = "slow"  // waits for the directory's gate
	userPanic     = "panic" // the directory panics
)

// fakeDirectory is a Directory that knows every user, with the password
// rightPassword. It counts its calls, reports each user on entered, and
// holds userSlow until gate is closed.
type fakeDirectory struct {
	calls    atomic.Int32
	accepted atomic.Int32 // calls that returned a user
	decoys   atomic.Int32
	entered  chan string // buffered; nil: not reported
	gate     chan struct{}
	mobile   string // every user's number, "" for none
}

func newFakeDirectory() *fakeDirectory {
	return &fakeDirectory{entered: make(chan string, 64), gate: make(chan struct{})}
}

// Find knows every user but those named unknown-*: the canonical name is
// the login lower-cased, so "ALICE" finds alice.
func (d *fakeDirectory) Find(ctx context.Context, login string) (*factors.User, error) {
	if strings.HasPrefix(login, "unknown-") {
		return nil, factors.ErrNoSuchUser
	}
	name := strings.ToLower(login)
	u := &factors.User{Name: name, DN: "uid=" + name + ",dc=example,dc=org"}
	if login != name {
		u.Login = login
	}
	return u, nil
}

func (d *fakeDirectory) Bind(ctx context.Context, u *factors.User, password string) (*factors.User, error) {
	d.calls.Add(1)
	if d.entered != nil {
		select {
		case d.entered <- u.Name:
		default:
		}
	}
	switch u.Name {
	case userSlow:
		select {
		case <-d.gate:
		case <-ctx.Done():
			return nil, factors.Unavailable("fake directory", ctx.Err())
		}
	case userPanic:
		panic("fake directory panics")
	}
	if password != rightPassword {
		return nil, factors.ErrBadCredentials
	}
	d.accepted.Add(1)
	cp := *u
	cp.Groups = []string{"staff"}
	if d.mobile != "" {
		cp.Mobile, cp.Voice = d.mobile, d.mobile
	}
	return &cp, nil
}

func (d *fakeDirectory) Decoy(context.Context, string) { d.decoys.Add(1) }

// release lets every slow call finish; it may be called more than once.
func (d *fakeDirectory) release() {
	select {
	case <-d.gate:
	default:
		close(d.gate)
	}
}

// waitEntered waits for the directory to be called for user.
func (d *fakeDirectory) waitEntered(t *testing.T, user string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case u := <-d.entered:
			if u == user {
				return
			}
		case <-timeout:
			t.Fatalf("the directory was not asked about %q", user)
		}
	}
}

// Secrets of the test clients.
const (
	secretOne = "first-shared-secret-0123"
	secretTwo = "second-shared-secret-4567"
)

// testClients are two loopback clients: "one" (127.0.0.1) and "two"
// (127.0.0.2), both with the default policy.
func testClients() []config.Client {
	return []config.Client{
		{Name: "one", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: config.NewSecret(secretOne), Policy: "default"},
		{Name: "two", Prefix: netip.MustParsePrefix("127.0.0.2/32"), Secret: config.NewSecret(secretTwo), Policy: "default"},
	}
}

// testPolicies has a default policy that accepts on the password alone.
func testPolicies() map[string]config.Policy {
	p := config.DefaultPolicy()
	p.MFA = config.MFAOff
	p.ReplyAttributes = []config.ReplyRule{{Attributes: map[string]config.Values{"Class": {"vpn-users"}}}}
	return map[string]config.Policy{"default": p}
}

// newTestConversation builds a Conversation over dir with an in-memory
// state store and no sweeper goroutine.
func newTestConversation(t testing.TB, dir Directory, m *Metrics) *Conversation {
	t.Helper()
	c, err := NewConversation(ConversationOptions{
		Directory: dir,
		State:     state.NewMemory(state.MemoryOptions{Sweep: -1}),
		Policies:  testPolicies(),
		Username:  config.Username{Lowercase: true},
		Metrics:   m,
	})
	if err != nil {
		t.Fatalf("NewConversation: %v", err)
	}
	return c
}

// fixedAuth is the Request Authenticator of deterministic test packets.
var fixedAuth = [16]byte{0x6d, 0x66, 0x61, 0x62, 0x72, 0x69, 0x64, 0x67, 0x65, 1, 2, 3, 4, 5, 6, 7}

// request is the description of a test Access-Request.
type request struct {
	code       radius.Code // default Access-Request
	id         byte
	user       string
	password   string // "" for none
	unsigned   bool   // no Message-Authenticator
	attrs      radius.Attributes
	randomAuth bool // a random Request Authenticator instead of fixedAuth
}

// packet builds the request for secret: User-Name, User-Password, the
// extra attributes, then Message-Authenticator unless unsigned.
func (r request) packet(t testing.TB, secret string) *radius.Packet {
	t.Helper()
	code := r.code
	if code == 0 {
		code = radius.CodeAccessRequest
	}
	p := radius.New(code, []byte(secret))
	p.Identifier = r.id
	if !r.randomAuth {
		p.Authenticator = fixedAuth
	}
	if r.user != "" {
		if err := rfc2865.UserName_SetString(p, r.user); err != nil {
			t.Fatal(err)
		}
	}
	if r.password != "" {
		if err := rfc2865.UserPassword_SetString(p, r.password); err != nil {
			t.Fatal(err)
		}
	}
	p.Attributes = append(p.Attributes, r.attrs...)
	if !r.unsigned {
		if err := Sign(p); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// encode builds and encodes the request.
func (r request) encode(t testing.TB, secret string) []byte {
	t.Helper()
	b, err := r.packet(t, secret).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds or 5 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Lookup finds nobody: these tests log in with passwords.
func (d *fakeDirectory) Lookup(context.Context, string) (*factors.User, error) {
	return nil, factors.ErrNoSuchUser
}

func (d *fakeDirectory) LookupIdentity(context.Context, string) (*factors.User, error) {
	return nil, factors.ErrNoSuchUser
}
