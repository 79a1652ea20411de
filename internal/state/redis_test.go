package state

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/test/harness"
)

// Against a real redis-server started for each test (the package
// redis-server; scripts/deps installs it).

func startRedis(t *testing.T, o harness.RedisOptions) *harness.Redis {
	t.Helper()
	r, err := harness.StartRedis(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func newRedis(t *testing.T, o RedisOptions) *Redis {
	t.Helper()
	if o.Prefix == "" {
		o.Prefix = "mfabridge:test:"
	}
	s, err := NewRedis(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRedisContract(t *testing.T) {
	r := startRedis(t, harness.RedisOptions{})
	testContract(t, newRedis(t, RedisOptions{Addresses: []string{r.Addr}}))
}

// The ACL user may touch mfabridge:* only: every key the store writes is
// under its prefix, and has an expiry.
func TestRedisKeysAreNamespacedAndExpire(t *testing.T) {
	r := startRedis(t, harness.RedisOptions{Username: "bridge", Password: "bridge-pass-1234"})
	s := newRedis(t, RedisOptions{Addresses: []string{r.Addr}, Username: "bridge", Password: "bridge-pass-1234", Prefix: "mfabridge:site1:"})
	testContract(t, s)
	ctx := context.Background()
	s.Set(ctx, "session:x", []byte("v"), time.Minute)
	s.Incr(ctx, "fail:pw:0:alice", time.Minute)
	s.SetNX(ctx, "otp:totp:alice:1", []byte{1}, time.Minute)
	keys, err := r.CLI("--scan")
	if err != nil {
		t.Fatal(keys, err)
	}
	n := 0
	for _, k := range strings.Fields(keys) {
		n++
		if !strings.HasPrefix(k, "mfabridge:site1:") {
			t.Errorf("key %q outside the prefix", k)
		}
		if ttl, _ := r.CLI("PTTL", k); strings.TrimSpace(ttl) == "-1" {
			t.Errorf("key %q has no expiry", k)
		}
	}
	if n == 0 {
		t.Fatal("no keys in Redis")
	}
	for _, err := range []error{
		s.Set(ctx, "k", []byte("v"), 0),
		func() error { _, err := s.SetNX(ctx, "k", []byte("v"), -time.Second); return err }(),
		func() error { _, err := s.Incr(ctx, "k", 0); return err }(),
	} {
		if !errors.Is(err, ErrNoExpiry) {
			t.Errorf("a key without expiry: %v, want ErrNoExpiry", err)
		}
	}
	// Another prefix is refused by the ACL: the rule ~mfabridge:* holds.
	outside := newRedis(t, RedisOptions{Addresses: []string{r.Addr}, Username: "bridge", Password: "bridge-pass-1234", Prefix: "elsewhere:"})
	if err := outside.Set(ctx, "k", []byte("v"), time.Minute); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("a key outside mfabridge:* was written: %v", err)
	}
}

func TestRedisWrongPasswordIsAnError(t *testing.T) {
	r := startRedis(t, harness.RedisOptions{Username: "bridge", Password: "bridge-pass-1234"})
	s := newRedis(t, RedisOptions{Addresses: []string{r.Addr}, Username: "bridge", Password: "wrong"})
	err := s.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("Ping with a wrong password: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") && !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("the password is in the error: %v", err)
	}
}

// TLS is verified: a server whose certificate another CA signed is
// refused.
func TestRedisTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := harness.NewCA(dir, "redis")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := harness.NewCA(dir, "other")
	r := startRedis(t, harness.RedisOptions{TLS: ca, Username: "bridge", Password: "bridge-pass-1234"})
	pool := func(ca *harness.CA) *x509.CertPool {
		p := x509.NewCertPool()
		pem, _ := os.ReadFile(ca.CertFile)
		p.AppendCertsFromPEM(pem)
		return p
	}
	good := newRedis(t, RedisOptions{Addresses: []string{r.Addr}, Username: "bridge", Password: "bridge-pass-1234",
		TLS: &tls.Config{RootCAs: pool(ca), ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	testContract(t, good)
	bad := newRedis(t, RedisOptions{Addresses: []string{r.Addr}, Username: "bridge", Password: "bridge-pass-1234",
		TLS: &tls.Config{RootCAs: pool(other), ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	if err := bad.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a certificate of another CA: %v", err)
	}
	clear := newRedis(t, RedisOptions{Addresses: []string{r.Addr}, Username: "bridge", Password: "bridge-pass-1234"})
	if err := clear.Ping(context.Background()); err == nil {
		t.Fatal("clear text reached a TLS-only server")
	}
}

// Redis gone: every call fails at once (within the timeout), none
// succeeds on a guess; Redis back on the same address: calls succeed
// again without a new client.
func TestRedisLostAndBack(t *testing.T) {
	r := startRedis(t, harness.RedisOptions{})
	s := newRedis(t, RedisOptions{Addresses: []string{r.Addr}, Timeout: 300 * time.Millisecond})
	ctx := context.Background()
	if _, err := s.Incr(ctx, "fail:pw:0:bob", time.Minute); err != nil {
		t.Fatal(err)
	}
	r.Kill()
	begin := time.Now()
	if _, err := s.Incr(ctx, "fail:pw:0:bob", time.Minute); err == nil {
		t.Fatal("Incr succeeded with Redis gone")
	}
	if _, ok, err := s.Take(ctx, "session:x"); err == nil || ok {
		t.Fatalf("Take with Redis gone: %v %v", ok, err)
	}
	if ok, err := s.SetNX(ctx, "otp:totp:bob:1", []byte{1}, time.Minute); err == nil || ok {
		t.Fatalf("SetNX with Redis gone: %v %v", ok, err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with Redis gone")
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("four calls with Redis gone took %s", d)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if !harness.Eventually(5*time.Second, func() bool { return s.Ping(ctx) == nil }) {
		t.Fatal("not serving 5 s after Redis came back")
	}
	if n, err := s.Incr(ctx, "fail:pw:0:bob", time.Minute); err != nil || n != 1 {
		t.Fatalf("Incr after Redis came back (empty, no persistence) = %d %v", n, err)
	}
}

// Ping refuses a replica: writes there fail, so the bridge is not ready.
func TestRedisPingWantsThePrimary(t *testing.T) {
	p := startRedis(t, harness.RedisOptions{})
	rep := startRedis(t, harness.RedisOptions{ReplicaOf: p.Addr})
	s := newRedis(t, RedisOptions{Addresses: []string{rep.Addr}})
	if err := s.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "not the primary") {
		t.Fatalf("Ping of a replica: %v", err)
	}
}

// Sealed over Redis: nothing in Redis reads as a session.
func TestSealedRedis(t *testing.T) {
	r := startRedis(t, harness.RedisOptions{})
	s, _ := NewSealed(newRedis(t, RedisOptions{Addresses: []string{r.Addr}}), bytes.Repeat([]byte{3}, 32))
	testContract(t, s)
	ctx := context.Background()
	s.Set(ctx, "session:x", []byte(`{"user":"carol","mobile":"+447700900456"}`), time.Minute)
	dump, _ := r.CLI("GET", "mfabridge:test:session:x")
	if strings.Contains(dump, "carol") || strings.Contains(dump, "447700900456") {
		t.Fatalf("Redis holds the session in clear: %q", dump)
	}
	if _, err := r.CLI("SET", "mfabridge:test:session:y", `{"user":"mallory"}`); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Take(ctx, "session:y"); ok || !errors.Is(err, ErrTampered) {
		t.Fatalf("a session written into Redis by hand: %v %v", ok, err)
	}
}
