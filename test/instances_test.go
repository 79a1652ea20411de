package test

// Several instances as one service: two bridges (A and B, as the two
// RADIUS servers a VPN concentrator is given) on one real redis-server
// and one enrolment store, with one fake Twilio.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/test/harness"
)

const (
	redisUser = "bridge"
	redisPass = "redis-bridge-pass-5b7c"
)

func init() { secrets.add(redisPass) }

// startRedis starts a redis-server of the test's own with the bridge's
// ACL user (keys mfabridge:* only).
func startRedis(t *testing.T, o harness.RedisOptions) *harness.Redis {
	t.Helper()
	if o.Username == "" {
		o.Username, o.Password = redisUser, redisPass
	}
	r, err := harness.StartRedis(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// redisState is the state section for Redis at addrs (Sentinels when
// master is set), the password in a file.
func redisState(t *testing.T, master string, extra string, addrs ...string) string {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "redis.secret")
	if err := os.WriteFile(pw, []byte(redisPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := ""
	if master != "" {
		sentinel = fmt.Sprintf("    sentinel_master: %q\n", master)
	}
	return fmt.Sprintf(`state:
  backend: redis
  redis:
    addresses: ["%s"]
    username: %s
    password: "file:%s"
    prefix: "mfabridge:it:"
    timeout: 300ms
%s%s`, strings.Join(addrs, `", "`), redisUser, pw, sentinel, extra)
}

// pair is two bridges sharing one state and one store.
type pair struct {
	a, b *twBridge
	fake *harness.FakeTwilio
}

// startPair starts A and B with tc and the state section given, on an
// enrolment store in a PostgreSQL database of the test's own.
func startPair(t *testing.T, tc twConf, state string) *pair {
	t.Helper()
	return startPairOn(t, tc, state, sharedPostgres(t))
}

func startPairOn(t *testing.T, tc twConf, state string, pg *harness.Postgres) *pair {
	t.Helper()
	p := &pair{fake: harness.NewFakeTwilio(twSID, twToken)}
	t.Cleanup(p.fake.Close)
	tc.Fake = p.fake
	tc.Store = pgStore(t, pg)
	tc.Extra = state + "\n" + tc.Extra
	p.a = startTwilioBridge(t, tc)
	p.b = startTwilioBridge(t, tc)
	return p
}

// pgStore is the store section for a new database of pg, its connection
// string (which holds the password) in a file.
func pgStore(t *testing.T, pg *harness.Postgres) string {
	t.Helper()
	db, err := pg.NewDatabase(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "pg.dsn")
	if err := os.WriteFile(f, []byte(pg.DSN(db)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`{driver: postgres, dsn: "file:%s", key: env:STORE_KEY}`, f)
}

// sharedPostgres is one PostgreSQL cluster for the package's tests,
// started by the first that needs it and stopped by TestMain.
func sharedPostgres(t *testing.T) *harness.Postgres {
	t.Helper()
	pgShared.once.Do(func() { pgShared.p, pgShared.err = harness.StartPostgres() })
	if pgShared.err != nil {
		t.Fatal(pgShared.err)
	}
	return pgShared.p
}

var pgShared struct {
	once sync.Once
	p    *harness.Postgres
	err  error
}

func init() { secrets.add(harness.PostgresPass) }

const instancesPolicy = `  default:
    mfa: required
    factors: [totp, sms]`

func TestInstancesChallengeAnsweredAtTheOther(t *testing.T) {
	t.Parallel()
	r := startRedis(t, harness.RedisOptions{})
	p := startPair(t, twConf{conf: conf{Policies: instancesPolicy}}, redisState(t, "", "", r.Addr))
	u := p.a.newPhoneUser(t, uniqueMobile())
	tk := p.a.enrolTOTP(t, u.UID)
	ca, cb := p.a.client(t, "127.0.0.1", secretLocal), p.b.client(t, "127.0.0.1", secretLocal)

	st, _ := p.a.challenged(t, ca, u.UID, u.Password)
	resp, rec := p.b.send(t, cb, u.UID, tk.code(0), withState(st))
	want(t, "A's challenge answered at B", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	// The State was used once, wherever: A refuses it now.
	resp, rec = p.a.send(t, ca, u.UID, tk.code(0), withState(st))
	want(t, "the State again at A", resp, rec, radius.CodeAccessReject, "unknown_state")
}

// The same TOTP code sent to A and B at the same moment, each with its
// own challenge: exactly one Accept, 50 times over.
func TestInstancesOneCodeAcceptedOnce(t *testing.T) {
	t.Parallel()
	r := startRedis(t, harness.RedisOptions{})
	p := startPair(t, twConf{conf: conf{Policies: instancesPolicy}}, redisState(t, "", "", r.Addr))
	ca, cb := p.a.client(t, "127.0.0.1", secretLocal), p.b.client(t, "127.0.0.1", secretLocal)
	const rounds = 50
	for i := range rounds {
		u := newUser(t)
		tk := p.a.enrolTOTP(t, u.UID)
		sa, _ := p.a.challenged(t, ca, u.UID, u.Password)
		sb, _ := p.b.challenged(t, cb, u.UID, u.Password)
		code := tk.code(0)
		var wg sync.WaitGroup
		var ra, rb *radius.Packet
		for _, x := range []struct {
			c   *harness.Client
			st  []byte
			out **radius.Packet
		}{{ca, sa, &ra}, {cb, sb, &rb}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, _, err := x.c.Exchange(harness.Request(secretLocal, u.UID, code, true, withState(x.st)), 5*time.Second)
				if err != nil {
					t.Errorf("round %d: %v", i, err)
					return
				}
				*x.out = resp
			}()
		}
		wg.Wait()
		if ra == nil || rb == nil {
			t.FailNow()
		}
		accepts := 0
		for _, resp := range []*radius.Packet{ra, rb} {
			if resp.Code == radius.CodeAccessAccept {
				accepts++
			}
		}
		if accepts != 1 {
			t.Fatalf("round %d: %d Accepts for one code at two instances (A %v, B %v)", i, accepts, ra.Code, rb.Code)
		}
	}
}

// Wrong passwords at A and B count on one counter.
func TestInstancesShareTheLockout(t *testing.T) {
	t.Parallel()
	r := startRedis(t, harness.RedisOptions{})
	p := startPair(t, twConf{conf: conf{Policies: instancesPolicy, Extra: "lockout: {max_failures: 4, known_station_ttl: 0s}"}},
		redisState(t, "", "", r.Addr))
	u := p.a.newPhoneUser(t, uniqueMobile())
	p.a.enrolTOTP(t, u.UID)
	ca, cb := p.a.client(t, "127.0.0.1", secretLocal), p.b.client(t, "127.0.0.1", secretLocal)
	for i := range 4 {
		b, c := p.a, ca
		if i%2 == 1 {
			b, c = p.b, cb
		}
		resp, rec := b.send(t, c, u.UID, "wrong-"+u.Password)
		want(t, fmt.Sprintf("wrong password %d", i+1), resp, rec, radius.CodeAccessReject, "bad_credentials")
	}
	for _, x := range []struct {
		b *twBridge
		c *harness.Client
	}{{p.a, ca}, {p.b, cb}} {
		resp, rec := x.b.send(t, x.c, u.UID, u.Password)
		want(t, "the right password after four wrong ones at two instances", resp, rec, radius.CodeAccessReject, "locked_out_password")
	}
}

// factors.sms.max_per_hour counts the sends of both instances.
func TestInstancesShareTheSendLimit(t *testing.T) {
	t.Parallel()
	r := startRedis(t, harness.RedisOptions{})
	p := startPair(t, twConf{conf: conf{Policies: smsOnlyPolicy}, Factors: "  sms: {max_per_hour: 2}"}, redisState(t, "", "", r.Addr))
	number := uniqueMobile()
	u := p.a.newPhoneUser(t, number)
	ca, cb := p.a.client(t, "127.0.0.1", secretLocal), p.b.client(t, "127.0.0.1", secretLocal)
	// Each from its own station, so that no login is a copy of another.
	p.a.challenged(t, ca, u.UID, u.Password, withStation("203.0.113.1"))
	p.b.challenged(t, cb, u.UID, u.Password, withStation("203.0.113.2"))
	resp, rec := p.a.send(t, ca, u.UID, u.Password, withStation("203.0.113.3"))
	want(t, "third send in the hour, at A", resp, rec, radius.CodeAccessReject, "send_failed")
	resp, rec = p.b.send(t, cb, u.UID, u.Password, withStation("203.0.113.4"))
	want(t, "third send in the hour, at B", resp, rec, radius.CodeAccessReject, "send_failed")
	if n := len(p.fake.MessagesTo(number)); n != 2 {
		t.Fatalf("%d text messages, want 2", n)
	}
}

// A NAS sends a login to A, hears nothing, and sends it to B with a new
// Identifier: one text message, and the code answers B's challenge.
func TestInstancesFailoverDuringSMSChallenge(t *testing.T) {
	t.Parallel()
	r := startRedis(t, harness.RedisOptions{})
	p := startPair(t, twConf{conf: conf{Policies: smsOnlyPolicy}}, redisState(t, "", "", r.Addr))
	number := uniqueMobile()
	u := p.a.newPhoneUser(t, number)
	ca, cb := p.a.client(t, "127.0.0.1", secretLocal), p.b.client(t, "127.0.0.1", secretLocal)
	station := withStation("198.51.100.20")
	req := harness.Request(secretLocal, u.UID, u.Password, true, station)
	if _, _, err := ca.Exchange(req, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// The same login at B, as the NAS builds it anew (new Identifier and
	// authenticator).
	stB, prompt := p.b.challenged(t, cb, u.UID, u.Password, station)
	if !strings.Contains(prompt, "text message with a code was sent") {
		t.Errorf("B's prompt %q", prompt)
	}
	msgs := p.fake.MessagesTo(number)
	if len(msgs) != 1 {
		t.Fatalf("%d text messages for one login that failed over, want 1", len(msgs))
	}
	resp, rec := p.b.send(t, cb, u.UID, msgs[0].Code(), withState(stB))
	want(t, "the one code at B", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	if v := p.b.metric(t, `mfabridge_factor_sends_total{factor="sms",result="duplicate"}`); v != 1 {
		t.Errorf("B counted %v duplicate sends, want 1", v)
	}
}

// user remove through the CLI on A's configuration: the very next login
// at B, which had the enrolment in its cache, finds no enrolment.
func TestInstancesRemovedUserRefusedAtTheOther(t *testing.T) {
	t.Parallel()
	r := startRedis(t, harness.RedisOptions{})
	p := startPair(t, twConf{conf: conf{Policies: `  default:
    mfa: required
    factors: [totp]`}}, redisState(t, "", "", r.Addr))
	u := newUser(t)
	p.a.enrolTOTP(t, u.UID)
	cb := p.b.client(t, "127.0.0.1", secretLocal)
	p.b.challenged(t, cb, u.UID, u.Password)
	if out, stderr, code := mfabridge(t, p.a.env(), "user", "remove", "--config", p.a.ConfigFile, "--user", u.UID); code != 0 {
		t.Fatalf("user remove: %d %s %s", code, out, stderr)
	}
	resp, rec := p.b.send(t, cb, u.UID, u.Password)
	want(t, "login at B after user remove at A", resp, rec, radius.CodeAccessReject, "not_enrolled")
}

// Redis lost while serving: every login that needs state is refused with
// state_unavailable and /readyz fails; Redis back: serving again within
// 5 s, no restart.
func TestInstancesRedisLostAndBack(t *testing.T) {
	t.Parallel()
	r := startRedis(t, harness.RedisOptions{})
	p := startPair(t, twConf{conf: conf{Policies: instancesPolicy}}, redisState(t, "", "", r.Addr))
	u := p.a.newPhoneUser(t, uniqueMobile())
	tk := p.a.enrolTOTP(t, u.UID)
	ca := p.a.client(t, "127.0.0.1", secretLocal)
	st, _ := p.a.challenged(t, ca, u.UID, u.Password)
	if code := readyz(t, p.a.bridge); code != http.StatusOK {
		t.Fatalf("/readyz %d with Redis up", code)
	}

	r.Kill()
	resp, rec := p.a.send(t, ca, u.UID, tk.code(0), withState(st))
	want(t, "an answer with Redis gone", resp, rec, radius.CodeAccessReject, "state_unavailable")
	resp, rec = p.a.send(t, ca, u.UID, u.Password)
	want(t, "a login with Redis gone", resp, rec, radius.CodeAccessReject, "state_unavailable")
	if code := readyz(t, p.a.bridge); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d with Redis gone, want 503", code)
	}

	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if !harness.Eventually(5*time.Second, func() bool { return readyz(t, p.a.bridge) == http.StatusOK }) {
		t.Fatal("/readyz still failing 5 s after Redis came back")
	}
	var ok bool
	for time.Since(back) < 5*time.Second && !ok {
		resp, _, err := ca.Exchange(harness.Request(secretLocal, u.UID, u.Password, true), 5*time.Second)
		ok = err == nil && resp.Code == radius.CodeAccessChallenge
	}
	if !ok {
		t.Fatal("no challenge within 5 s of Redis coming back")
	}
	t.Logf("serving again %s after Redis came back", time.Since(back).Round(time.Millisecond))
}

// A bridge whose Redis is not there yet starts, not ready, refusing
// logins with state_unavailable, and serves once Redis starts. One
// whose Redis refuses its password does not start.
func TestInstancesStartBeforeRedis(t *testing.T) {
	t.Parallel()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	b := startTwilioBridge(t, twConf{conf: conf{Policies: instancesPolicy, Extra: redisState(t, "", "", addr)}})
	if !b.WaitLog("Redis does not answer yet", 5*time.Second) {
		t.Fatal("no warning that Redis does not answer")
	}
	if code := readyz(t, b.bridge); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d before Redis, want 503", code)
	}
	u := b.newPhoneUser(t, uniqueMobile())
	b.enrolTOTP(t, u.UID)
	c := b.client(t, "127.0.0.1", secretLocal)
	resp, rec := b.send(t, c, u.UID, u.Password)
	want(t, "a login before Redis", resp, rec, radius.CodeAccessReject, "state_unavailable")

	startRedis(t, harness.RedisOptions{Port: port})
	if !harness.Eventually(5*time.Second, func() bool { return readyz(t, b.bridge) == http.StatusOK }) {
		t.Fatal("not ready 5 s after Redis started")
	}
	b.challenged(t, c, u.UID, u.Password)

	// Wrong credentials are a configuration error: no start.
	cfg := filepath.Join(t.TempDir(), "wrong.yaml")
	data, _ := os.ReadFile(b.ConfigFile)
	pw := filepath.Join(t.TempDir(), "wrong.secret")
	os.WriteFile(pw, []byte("not-the-password\n"), 0o600)
	text := string(data)
	i := strings.Index(text, `password: "file:`)
	j := strings.Index(text[i:], "\n")
	os.WriteFile(cfg, []byte(text[:i]+`password: "file:`+pw+`"`+text[i+j:]), 0o600)
	_, stderr, code := mfabridge(t, b.env(), "serve", "--config", cfg)
	if code == 0 || !strings.Contains(stderr, "WRONGPASS") || !strings.Contains(stderr, "state.redis") {
		t.Fatalf("serve with a wrong Redis password: exit %d, stderr %s", code, stderr)
	}
}

func readyz(t *testing.T, b *bridge) int {
	t.Helper()
	resp, err := http.Get("http://" + b.Admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Redis over TLS, verified against its CA; the ACL user's password and
// the State never in any log.
func TestInstancesRedisTLS(t *testing.T) {
	t.Parallel()
	ca, err := harness.NewCA(t.TempDir(), "redis")
	if err != nil {
		t.Fatal(err)
	}
	r := startRedis(t, harness.RedisOptions{TLS: ca})
	p := startPair(t, twConf{conf: conf{Policies: instancesPolicy}},
		redisState(t, "", fmt.Sprintf("    tls: {ca_file: %q, server_name: localhost}\n", ca.CertFile), r.Addr))
	u := p.a.newPhoneUser(t, uniqueMobile())
	tk := p.a.enrolTOTP(t, u.UID)
	ca2, cb := p.a.client(t, "127.0.0.1", secretLocal), p.b.client(t, "127.0.0.1", secretLocal)
	st, _ := p.a.challenged(t, ca2, u.UID, u.Password)
	resp, rec := p.b.send(t, cb, u.UID, tk.code(0), withState(st))
	want(t, "A's challenge answered at B over TLS", resp, rec, radius.CodeAccessAccept, "mfa_passed")

	// What Redis holds: keys under the prefix, each with an expiry, no
	// value with the user's name or number in it.
	keys, err := r.CLI("--scan")
	if err != nil {
		t.Fatal(keys, err)
	}
	for _, k := range strings.Fields(keys) {
		if !strings.HasPrefix(k, "mfabridge:it:") {
			t.Errorf("key %q outside the prefix", k)
		}
		if ttl, _ := r.CLI("PTTL", k); strings.TrimSpace(ttl) == "-1" {
			t.Errorf("key %q has no expiry", k)
		}
		if typ, _ := r.CLI("TYPE", k); strings.TrimSpace(typ) == "string" {
			if v, _ := r.CLI("GET", k); strings.Contains(v, u.Mobile[3:]) || strings.Contains(v, "uid=") {
				t.Errorf("key %q holds %q in clear", k, v)
			}
		}
	}
}

// A Sentinel failover under load: the primary dies, Sentinel promotes the
// replica, and logins continue; meanwhile nothing is accepted that
// should not be, and every refusal is state_unavailable.
func TestInstancesSentinelFailover(t *testing.T) {
	t.Parallel()
	primary := startRedis(t, harness.RedisOptions{})
	replica := startRedis(t, harness.RedisOptions{ReplicaOf: primary.Addr})
	if !harness.Eventually(10*time.Second, func() bool {
		out, _ := replica.CLI("INFO", "replication")
		return strings.Contains(out, "master_link_status:up")
	}) {
		t.Fatal("the replica never linked to the primary")
	}
	sentinel, err := harness.StartSentinel(t.TempDir(), harness.SentinelOptions{Master: "mfab", Primary: primary})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sentinel.Stop)
	if !harness.Eventually(10*time.Second, func() bool {
		out, _ := sentinel.CLI("SENTINEL", "replicas", "mfab")
		return strings.Contains(out, fmt.Sprint(replica.Port))
	}) {
		t.Fatal("Sentinel never saw the replica")
	}
	p := startPair(t, twConf{conf: conf{Policies: instancesPolicy}}, redisState(t, "mfab", "", sentinel.Addr))
	u := p.a.newPhoneUser(t, uniqueMobile())
	tk := p.a.enrolTOTP(t, u.UID)
	ca, cb := p.a.client(t, "127.0.0.1", secretLocal), p.b.client(t, "127.0.0.1", secretLocal)
	p.a.challenged(t, ca, u.UID, u.Password)

	// One challenge flow after another (login at A, answer at B) until
	// one completes after the failover; each wrong-code answer must be
	// refused.
	primary.Kill()
	killed := time.Now()
	var after time.Duration
	var refused, flows int
	for time.Since(killed) < 30*time.Second {
		resp, _, err := ca.Exchange(harness.Request(secretLocal, u.UID, u.Password, true), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != radius.CodeAccessChallenge {
			if resp.Code == radius.CodeAccessAccept {
				t.Fatal("a password alone was accepted during the failover")
			}
			refused++
			time.Sleep(100 * time.Millisecond)
			continue
		}
		st := rfc2865.State_Get(resp)
		wrong, _, err := cb.Exchange(harness.Request(secretLocal, u.UID, tk.wrong(), true, withState(st)), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if wrong.Code == radius.CodeAccessAccept {
			t.Fatal("a wrong code was accepted during the failover")
		}
		if wrong.Code != radius.CodeAccessChallenge {
			refused++
			continue
		}
		// The wrong answer left a retry: the right code now.
		st = rfc2865.State_Get(wrong)
		right, _, err := cb.Exchange(harness.Request(secretLocal, u.UID, tk.code(0), true, withState(st)), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if right.Code == radius.CodeAccessAccept {
			flows++
			after = time.Since(killed)
			break
		}
		refused++
	}
	if flows == 0 {
		t.Fatalf("no login completed within 30 s of the primary's death (%d refused)", refused)
	}
	for _, b := range []*twBridge{p.a, p.b} {
		for _, r := range filterAudit(b.audit(t), u.UID) {
			if r.Outcome == "reject" && r.Reason != "state_unavailable" && r.Reason != "wrong_code" && r.Reason != "replayed_code" {
				t.Errorf("a refusal during the failover had reason %q", r.Reason)
			}
		}
	}
	t.Logf("logins continued %s after the primary died (%d requests refused meanwhile)", after.Round(time.Millisecond), refused)
}

// PostgreSQL lost while serving: logins are refused with
// store_unavailable and /readyz fails; back: serving again within 5 s.
func TestInstancesPostgresLostAndBack(t *testing.T) {
	t.Parallel()
	pg, err := harness.StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Remove)
	r := startRedis(t, harness.RedisOptions{})
	p := startPairOn(t, twConf{conf: conf{Policies: instancesPolicy}}, redisState(t, "", "", r.Addr), pg)
	u := p.a.newPhoneUser(t, uniqueMobile())
	p.a.enrolTOTP(t, u.UID)
	cb := p.b.client(t, "127.0.0.1", secretLocal)
	p.b.challenged(t, cb, u.UID, u.Password)

	pg.Kill()
	resp, rec := p.b.send(t, cb, u.UID, u.Password)
	want(t, "a login with PostgreSQL gone", resp, rec, radius.CodeAccessReject, "store_unavailable")
	if code := readyz(t, p.b.bridge); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d with PostgreSQL gone, want 503", code)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	var ok bool
	for time.Since(back) < 5*time.Second && !ok {
		resp, _, err := cb.Exchange(harness.Request(secretLocal, u.UID, u.Password, true), 5*time.Second)
		ok = err == nil && resp.Code == radius.CodeAccessChallenge
		if !ok {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatal("no challenge within 5 s of PostgreSQL coming back")
	}
	if code := readyz(t, p.b.bridge); code != http.StatusOK {
		t.Errorf("/readyz %d after PostgreSQL came back", code)
	}
	t.Logf("serving again %s after PostgreSQL came back", time.Since(back).Round(time.Millisecond))
}

// EAP-TLS stays on the instance that began it (a live TLS state), but
// needs nothing more of its own: a smartcard login works through either
// instance of a pair on Redis and PostgreSQL, each whole at one.
func TestInstancesSmartcardThroughEither(t *testing.T) {
	t.Parallel()
	s := newCardSetup(t)
	r := startRedis(t, harness.RedisOptions{})
	u := newUser(t, "vpn-admins")
	c := conf{Policies: cardPolicy, ServerExtra: cardServer, Extra: s.with() + redisState(t, "", "", r.Addr),
		Store: pgStore(t, sharedPostgres(t))}
	a, b := startBridge(t, c), startBridge(t, c)
	cd := s.issue(t, nil, "card", harness.CardOptions{CN: u.UID, UPN: u.UID + "@example.org"})
	for _, x := range []*bridge{a, b} {
		run := x.eapol(t, s, cd, u.UID, "", tls13)
		x.wantSuccess(t, run, u.UID, cd)
	}
}
