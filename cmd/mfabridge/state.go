package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/internal/state"
)

// sharedState is the ephemeral state and what goes with it: a Ping for
// /readyz, and the key sent codes are hashed under (the same in every
// instance that shares the state).
type sharedState struct {
	state.Store
	ping    func(context.Context) error // nil: always ready (memory)
	codeKey []byte
}

// subKey derives a key for one purpose from store.key.
func subKey(storeKey []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, storeKey, nil, "mfabridge "+purpose, 32)
	if err != nil {
		panic(err) // only for lengths sha256 cannot give
	}
	return k
}

// openState opens state.backend. A Redis that cannot be reached yet is
// no reason not to start (instances and Redis start in any order): the
// bridge starts not ready and refuses what needs state until Redis
// answers. A Redis that refuses the credentials or whose certificate
// does not verify is a configuration error, and the bridge does not
// start.
func openState(cfg *config.Config, log *slog.Logger) (*sharedState, error) {
	var storeKey []byte
	if !cfg.Store.Key.IsZero() {
		k, err := config.DecodeKey(cfg.Store.Key.Value())
		if err != nil {
			return nil, fmt.Errorf("store.key: %w", err)
		}
		storeKey = k
	}
	if cfg.State.Backend != "redis" {
		m := state.NewMemory(state.MemoryOptions{MaxEntries: cfg.State.MaxEntries})
		var ck []byte
		if storeKey != nil {
			ck = subKey(storeKey, "sent codes")
		}
		return &sharedState{Store: m, codeKey: ck}, nil
	}
	rc := cfg.State.Redis
	o := state.RedisOptions{Addresses: rc.Addresses, Username: rc.Username, Password: rc.Password.Value(), DB: rc.DB,
		Prefix: rc.Prefix, SentinelMaster: rc.SentinelMaster, SentinelUsername: rc.SentinelUsername,
		SentinelPassword: rc.SentinelPassword.Value(), Timeout: rc.Timeout}
	if rc.TLS != nil {
		t, err := redisTLS(rc)
		if err != nil {
			return nil, err
		}
		o.TLS = t
	}
	r, err := state.NewRedis(o)
	if err != nil {
		return nil, err
	}
	sealed, err := state.NewSealed(r, subKey(storeKey, "state seal"))
	if err != nil {
		r.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*rc.Timeout+time.Second)
	defer cancel()
	if err := r.Ping(ctx); err != nil {
		if fatalRedis(err) {
			r.Close()
			return nil, fmt.Errorf("state.redis (%s): %w; check state.redis.username, password and tls", strings.Join(rc.Addresses, ", "), err)
		}
		log.Warn("Redis does not answer yet; logins that need state are refused until it does", "addresses", rc.Addresses, "err", err)
	}
	return &sharedState{Store: sealed, ping: r.Ping, codeKey: subKey(storeKey, "sent codes")}, nil
}

// fatalRedis is an answer that waiting will not change: wrong
// credentials, a user without the rights, a certificate that does not
// verify.
func fatalRedis(err error) bool {
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr *tls.CertificateVerificationError
	if errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) {
		return true
	}
	for _, s := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "invalid password", "certificate"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

func redisTLS(rc config.Redis) (*tls.Config, error) {
	// An empty ServerName is the host of each address dialled (the
	// primary's, as Sentinel names it, too).
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: rc.TLS.ServerName, InsecureSkipVerify: rc.TLS.InsecureSkipVerify}
	if f := rc.TLS.CAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("state.redis.tls.ca_file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("state.redis.tls.ca_file %s holds no PEM certificate", f)
		}
	}
	return t, nil
}
